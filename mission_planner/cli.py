"""`patrol plan`: governance grid in, sorties per drone out (plus `demo_plan` for `patrol demo`).

    patrol plan --grids cells.geojson --drones 12 --out out/plan [--horizon-h 4] [--json]

Exit status: 0 planned; 2 invalid input (every problem listed on stderr, nothing written).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .config import PlannerConfig
from .errors import PlanningError
from .grids import load_grids
from .output import finite, write_plan_dir
from .planner import PatrolPlan, plan_patrol
from .samples import DANYANG_GRIDS

EXIT_INVALID = 2


def register(subparsers) -> None:
    p = subparsers.add_parser("plan", help="grid cells -> sorties, .plan/.waypoints, plan.png",
                              description="Plan a drone patrol of governance grid cells: coverage lanes per cell, "
                                          "sorties within battery endurance, revisits over the horizon.")
    p.add_argument("--grids", required=True, help="GeoJSON FeatureCollection of cells, no-fly zones and docks")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--drones", type=int, help="fleet size (default 12), spread over the docks")
    p.add_argument("--config", help="YAML planner config (sections camera, coverage, fleet, schedule, grids, solver)")
    p.add_argument("--altitude-m", type=float, help="survey altitude AGL (default 60)")
    p.add_argument("--side-overlap", type=float, help="side overlap of adjacent lanes, 0..0.9 (default 0.2)")
    p.add_argument("--hfov-deg", type=float, help="camera horizontal field of view (default 82)")
    p.add_argument("--pack-mah", type=float, help="battery pack of the airframe profile, mAh (default 13000: 25 min "
                   "at the profile's 31.2 A cruise)")
    p.add_argument("--reserve", type=float, help="fraction of the pack kept in reserve (default 0.2)")
    p.add_argument("--speed-m-s", type=float, help="cruise speed (default 10)")
    p.add_argument("--horizon-h", "--horizon", type=float, dest="horizon_h", help="plan revisits over this long (default 4)")
    p.add_argument("--max-cell-km2", type=float, help="reject cells larger than this (default 5)")
    p.add_argument("--time-cap-s", type=float, help="OR-Tools search time cap, all docks together (default 1.5)")
    p.add_argument("--cells", help="plan only these grid_ids (comma separated)")
    p.add_argument("--skip-invalid", action="store_true", help="plan the valid features and list the skipped ones")
    p.add_argument("--no-png", action="store_true", help="skip plan.png")
    p.add_argument("--json", action="store_true", help="print the plan summary as JSON on stdout")
    p.set_defaults(func=run_plan)


def config_from_args(args: argparse.Namespace) -> PlannerConfig:
    base = PlannerConfig.from_yaml(args.config) if getattr(args, "config", None) else PlannerConfig()
    return base.with_overrides(
        camera={"hfov_deg": args.hfov_deg},
        coverage={"altitude_m": args.altitude_m, "side_overlap": args.side_overlap},
        fleet={"drones": args.drones, "airframe": {"pack_mah": args.pack_mah, "reserve": args.reserve,
                                                   "cruise_speed_m_s": args.speed_m_s}},
        schedule={"horizon_h": args.horizon_h},
        grids={"max_cell_area_km2": args.max_cell_km2},
        solver={"time_cap_s": args.time_cap_s},
    )


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_plan(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    try:
        cfg = config_from_args(args)
        _stderr(f"reading {args.grids} ...")
        grids = load_grids(args.grids, skip_invalid=args.skip_invalid, grid_config=cfg.grids, schedule=cfg.schedule)
        for problem in grids.skipped:
            _stderr(f"skipped {problem}")
        cells = [c.strip() for c in args.cells.split(",") if c.strip()] if args.cells else None
        plan = plan_patrol(grids, cfg, cells=cells, progress=_stderr)
    except PlanningError as exc:
        _stderr(f"patrol plan: {exc}")
        return EXIT_INVALID
    write_plan_dir(plan, args.out, png=not args.no_png, progress=_stderr)
    _stderr(describe(plan, Path(args.out), time.perf_counter() - t0))
    if args.json:  # plan.json without the per-cell table and the echoed config
        summary = plan.summary()
        print(json.dumps(finite({"out": str(args.out), "totals": summary["totals"], "warnings": summary["warnings"],
                                 "drones": summary["drones"]}), indent=1, allow_nan=False))
    return 0


def describe(plan: PatrolPlan, out: Path, wall_s: float) -> str:
    t = plan.summary()["totals"]
    lines = [
        f"planned {t['cells']} cells for {len(plan.drones)} drones: {t['sorties']} sorties, "
        f"{t['distance_m'] / 1000:.0f} km, first cycle {plan.makespan_s / 3600:.2f} h "
        f"(planning {plan.timings_s.get('total', 0):.2f} s, total {wall_s:.1f} s)",
        f"coverage: min {plan.min_coverage * 100:.2f} %, {len(t['cells_below_min_coverage'])} cells below "
        f"{plan.config.coverage.min_coverage * 100:g} %",
    ]
    if t["special_cells_missing_revisit"]:
        lines.append(f"revisits: {len(t['special_cells_missing_revisit'])} special cells miss their revisit_min "
                     f"(worst gap {t['worst_special_gap_s'] / 60:.0f} min); add drones or docks")
    lines += [f"warning: {w}" for w in plan.warnings]
    lines.append(f"map: {out / 'plan.png'}\nsummary: {out / 'plan.json'}\nmissions: {out}/<drone>/<sortie>.plan")
    return "\n".join(lines)


def demo_plan(out_dir: str, drones: int = 12) -> int:
    """`patrol demo` until the full loop lands: plan the bundled Danyang sample into out_dir."""
    t0 = time.perf_counter()
    cfg = PlannerConfig().with_overrides(fleet={"drones": drones})
    try:
        grids = load_grids(DANYANG_GRIDS, grid_config=cfg.grids, schedule=cfg.schedule)
        plan = plan_patrol(grids, cfg, progress=_stderr)
    except PlanningError as exc:
        _stderr(f"patrol demo: {exc}")
        return EXIT_INVALID
    out = Path(out_dir)
    write_plan_dir(plan, out, progress=_stderr)
    print(describe(plan, out, time.perf_counter() - t0))
    return 0
