"""The shift section of the after-action report: how often each cell was seen, the longest it
went unseen against its revisit target, drones that dropped out and the cells they left, and a
coverage-over-time chart (`coverage.png`: share of the area seen within its target interval).

Visits are the coverage ledger's (runloop/coverage.py: a part counts as visited once 80 % of it
was seen within 15 min); a cell's visits are the fewest of its parts', its longest gap the
longest of its parts' (counted from the start of the run and to its end).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

CHART_STEP_S = 10.0


def part_gaps(visits_s: list[float], end_s: float) -> float:
    seq = [0.0, *sorted(t for t in visits_s if t <= end_s), end_s]
    return max(b - a for a, b in zip(seq[:-1], seq[1:]))


def coverage_over_time(parts: list[dict], targets: dict[str, float], end_s: float,
                       step_s: float = CHART_STEP_S) -> list[tuple[float, float]]:
    """[(t_s, share of the parts' area seen within its cell's target interval at t)]."""
    total = sum(p.get("area_m2", 1.0) for p in parts) or 1.0
    out = []
    t = 0.0
    while t <= end_s + 1e-6:
        fresh = 0.0
        for p in parts:
            last = max((v for v in p["visits_s"] if v <= t), default=None)
            if last is not None and t - last <= targets.get(p["grid_id"], float("inf")):
                fresh += p.get("area_m2", 1.0)
        out.append((round(t, 1), round(fresh / total, 4)))
        t += step_s
    return out


def shift_summary(coverage: dict, cells: dict[str, dict], events: dict[str, list[dict]], end_s: float) -> dict:
    """cells: grid_id -> {kind, revisit_s}; events: drone_lost / cells_returned / pack_swap rows."""
    parts = coverage.get("parts", [])
    by_cell: dict[str, list[dict]] = {}
    for p in parts:
        by_cell.setdefault(p["grid_id"], []).append(p)
    table = {}
    for g, ps in sorted(by_cell.items()):
        info = cells.get(g, {})
        target = info.get("revisit_s")
        gap = max(part_gaps(p["visits_s"], end_s) for p in ps)
        table[g] = {"kind": info.get("kind", "comprehensive"), "target_s": target,
                    "visits": min(len([t for t in p["visits_s"] if t <= end_s]) for p in ps),
                    "longest_gap_s": round(gap, 1),
                    "within_target": None if target is None else gap <= target}
    longest: dict[str, float] = {}
    for row in table.values():
        longest[row["kind"]] = max(longest.get(row["kind"], 0.0), row["longest_gap_s"])
    targets = {g: c["revisit_s"] for g, c in cells.items() if c.get("revisit_s")}
    return {
        "cells": table,
        "longest_gap_s": longest,
        "end_s": round(end_s, 1),
        "drones_lost": events.get("drone_lost", []),
        "cells_returned": events.get("cells_returned", []),
        "pack_swaps": len(events.get("pack_swap", [])),
        # drone-seconds a drone waited on its dock with a charged pack while a cell nobody flew was overdue
        "idle_while_overdue_s": round(sum(e.get("seconds", 0.0) for e in events.get("idle_while_overdue", [])), 1),
        "coverage_over_time": coverage_over_time(parts, targets, end_s),
    }


def shift_failures(summary: dict, criteria: dict) -> list[str]:
    """`pass.max_revisit_gap_s: {special: S, comprehensive: S}`: cells unseen for longer fail the run."""
    limits = criteria.get("max_revisit_gap_s") or {}
    out = []
    for kind, lim in limits.items():
        if lim is None:
            continue
        bad = [f"{g} {row['longest_gap_s']:.0f} s" for g, row in summary.get("cells", {}).items()
               if row["kind"] == kind and row["longest_gap_s"] > lim]
        if bad:
            out.append(f"{kind} cells unseen for longer than {lim:g} s: {', '.join(bad)}")
    return out


def coverage_png(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = summary.get("coverage_over_time") or []
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot([t / 60 for t, _ in pts], [100 * s for _, s in pts], color="#1f77b4")
    ax.set_xlabel("scenario minutes")
    ax.set_ylabel("% of area seen within target")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    for d in summary.get("drones_lost", []):
        ax.axvline(d["t_s"] / 60, color="#c0392b", ls="--", lw=1)
    ax.set_title("Coverage over the shift")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def store_events(store, kinds=("drone_lost", "cells_returned", "pack_swap", "idle_while_overdue")) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict]] = {k: [] for k in kinds}
    for e in store.events(*kinds):
        out[e.kind].append({"t_s": round(e.t_s, 1), "drone_id": e.subject, **e.data})
    return out
