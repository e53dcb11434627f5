"""Writing a plan directory: plan.json, plan.geojson, plan.png and per sortie .plan/.waypoints.

Everything is written to a scratch directory beside DIR first and moved into place at the end,
so a failure half way leaves the previous plan in DIR untouched, and a new plan never leaves a
previous plan's extra sortie files behind.
"""
from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from .formats import write_plan, write_waypoints
from .planner import PatrolPlan
from .render import render_png, write_geojson

PLAN_FILES = ("plan.json", "plan.geojson", "plan.png")


def write_plan_dir(plan: PatrolPlan, out_dir: str | Path, *, png: bool = True,
                   progress: Callable[[str], None] | None = None) -> Path:
    say = progress or (lambda m: None)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        say(f"writing {len(plan.sorties)} sorties ...")
        for d in plan.drones:
            ddir = scratch / d.drone_id
            ddir.mkdir()
            for s in d.sorties:
                write_plan(ddir / f"{s.sortie_id}.plan", s.mission)
                write_waypoints(ddir / f"{s.sortie_id}.waypoints", s.mission)
        (scratch / "plan.json").write_text(json.dumps(finite(plan.summary()), indent=1, allow_nan=False) + "\n",
                                           encoding="utf-8")
        write_geojson(plan, scratch / "plan.geojson")
        if png:
            say("drawing plan.png ...")
            render_png(plan, scratch / "plan.png")
        out.mkdir(exist_ok=True)
        # Replace the previous plan's files (only ours: drone dirs and plan.*), then move in.
        for old in out.iterdir():
            if old.name in PLAN_FILES or (old.is_dir() and (old / "sortie01.plan").exists()):
                shutil.rmtree(old) if old.is_dir() else old.unlink()
        for new in scratch.iterdir():
            new.rename(out / new.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out


def finite(value):
    """JSON has no infinity: an unbounded figure (a cell never seen) is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value
