"""Planner benchmark on the bundled Danyang sample (972 cells, 12 drones, 4 docks).

Targets (issue 2, 2-core machine): lanes for all cells <= 1 s; the whole plan <= 3 s wall.
Prints its figures; run it on a quiet machine for numbers worth quoting.

    .venv/bin/python bench/plan_bench.py [--repeat 3] [--drones 12] [--out DIR] [--solver-cap S]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mission_planner import PlannerConfig, load_grids, plan_patrol  # noqa: E402
from mission_planner.output import write_plan_dir  # noqa: E402
from mission_planner.units import sweep_grid  # noqa: E402
from mission_planner.samples import DANYANG_GRIDS  # noqa: E402

LANES_TARGET_S = 1.0
PLAN_TARGET_S = 3.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--drones", type=int, default=12)
    ap.add_argument("--out", help="also write the plan directory (files + PNG) here and time it")
    ap.add_argument("--solver-cap", type=float, metavar="S",
                    help="OR-Tools time cap (default 1.5 s); a large one lets the solution limit end the search, "
                         "so the plan (and its first cycle) is the same under any load")
    args = ap.parse_args(argv)
    cfg = PlannerConfig().with_overrides(fleet={"drones": args.drones},
                                         **({"solver": {"time_cap_s": args.solver_cap}} if args.solver_cap else {}))

    load_s, lanes_s, plan_s, wall_s = [], [], [], []
    plan = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        grids = load_grids(DANYANG_GRIDS)
        t1 = time.perf_counter()
        plan = plan_patrol(grids, cfg)
        t2 = time.perf_counter()
        load_s.append(t1 - t0)
        plan_s.append(t2 - t1)
        wall_s.append(t2 - t0)
        t3 = time.perf_counter()
        sweep_grid(grids, cfg)
        lanes_s.append(time.perf_counter() - t3)
    assert plan is not None
    t = plan.summary()["totals"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    def fig(values):
        return f"median {statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f})"

    print(f"planner bench: {len(plan.cells)} cells, {len(plan.drones)} drones, {len(plan.grids.docks)} docks, "
          f"{args.repeat} runs, {os.cpu_count()} CPUs, load average {load:.2f}")
    print(f"  load+validate grid     {fig(load_s)}")
    print(f"  lanes for all cells    {fig(lanes_s)}   target <= {LANES_TARGET_S:g} s  "
          f"{'OK' if statistics.median(lanes_s) <= LANES_TARGET_S else 'MISSED'}")
    print(f"  plan_patrol            {fig(plan_s)}")
    print(f"  whole plan (load+plan) {fig(wall_s)}   target <= {PLAN_TARGET_S:g} s  "
          f"{'OK' if statistics.median(wall_s) <= PLAN_TARGET_S else 'MISSED'}")
    print("  stage times (last run): " + ", ".join(f"{k} {v:.3f} s" for k, v in plan.timings_s.items()))
    print(f"  result: {t['sorties']} sorties, {t['distance_m'] / 1000:.0f} km, first cycle {plan.makespan_s / 3600:.2f} h, "
          f"min coverage {t['min_coverage'] * 100:.2f} %, special cells missing revisit "
          f"{len(t['special_cells_missing_revisit'])}")
    lb = first_cycle_bounds(plan)
    print(f"  first cycle {plan.makespan_s / 3600:.2f} h against lower bounds: flying its sorties (+ swap) "
          f"shared by {len(plan.drones)} drones {lb['sorties_h']:.2f} h (ratio {plan.makespan_s / 3600 / lb['sorties_h']:.2f}); "
          f"sweeping alone {lb['survey_h']:.2f} h (ratio {plan.makespan_s / 3600 / lb['survey_h']:.2f}); "
          f"{lb['special_share'] * 100:.0f} % of the first cycle's drone time is revisit rounds")
    print(f"  first cycle against the issue-14 lower bound (survey + transit of its sorties / {len(plan.drones)} drones, "
          f"{lb['flight_h']:.2f} h): ratio {plan.makespan_s / 3600 / lb['flight_h']:.2f}")
    ends: dict[str, float] = {}
    for s in plan.sorties:
        if s.purpose == "cycle" and s.cycle == 1:
            ends[s.dock_id] = max(ends.get(s.dock_id, 0.0), s.end_s)
    print("  first cycle's last sortie back, per dock: " + ", ".join(f"{d} {v / 3600:.2f} h" for d, v in sorted(ends.items())))
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="plan-bench-"))
    t4 = time.perf_counter()
    write_plan_dir(plan, out)
    print(f"  write {len(plan.sorties)} .plan/.waypoints + plan.json/.geojson/.png  {time.perf_counter() - t4:.3f} s  ({out})")
    return 0


def first_cycle_bounds(plan) -> dict:
    """Lower bounds on the first cycle's makespan: the drone time of the sorties flown until it ends
    (survey + transit + take-off/landing + swap) shared evenly by the drones, and the sweeping
    alone (every part's lanes once) shared evenly, and issue 14's: the survey + transit time of
    the first cycle's sorties (each part once) shared evenly."""
    swap = plan.config.fleet.battery_swap_min * 60.0
    flown = [s for s in plan.sorties if s.start_s < plan.makespan_s]
    drones = len(plan.drones)
    busy = sum(s.duration_s + swap for s in flown)
    flight = sum(s.duration_s for s in plan.sorties if s.cycle <= 1 and s.purpose == "cycle")
    special = sum(s.duration_s + swap for s in flown if s.purpose == "special")
    survey = sum(u.work_s for u in plan.units)
    return {"sorties_h": busy / drones / 3600, "flight_h": flight / drones / 3600, "survey_h": survey / drones / 3600,
            "special_share": special / busy if busy else 0.0}


if __name__ == "__main__":
    raise SystemExit(main())
