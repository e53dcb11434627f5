"""Patrol shift benchmark: the live schedule (mission_planner.next_sortie) flying a whole shift on
the kinematic fleet model (mission_planner.shift_model: sorties as planned, no MAVLink).

Targets (issue 14):
- demo cells (5 cells, 3 drones, 1,500 s): every cell seen at least twice, longest gap <= 700 s,
  no drone idle on its dock with a charged pack while a cell is overdue;
- the whole sample (972 cells, 12 drones, 8 h): special cells seen within their revisit target
  for >= 95 % of the shift; the longest gaps of ordinary cells reported;
- choosing one sortie <= 0.2 s.

    .venv/bin/python bench/shift_bench.py [--city-hours 8] [--skip-city] [--swap-s 120]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.dock_service import DockService  # noqa: E402
from mission_planner import PlannerConfig, load_grids, plan_patrol  # noqa: E402
from mission_planner.next_sortie import ShiftWeights, SortieChooser  # noqa: E402
from mission_planner.samples import DANYANG_GRIDS  # noqa: E402
from mission_planner.shift_model import simulate_shift  # noqa: E402

DEMO_CELLS = ["DY-C0713", "DY-C0534", "DY-C0266", "DY-C0017", "DY-C0537"]
DEMO_GAP_TARGET_S = 700.0
SPECIAL_SHARE_TARGET = 0.95
CHOOSE_TARGET_S = 0.2


def ok(flag: bool) -> str:
    return "OK" if flag else "MISSED"


def demo(grids, swap_s: float) -> None:
    cfg = PlannerConfig().with_overrides(
        fleet={"drones": 3, "airframe": {"pack_mah": 8320, "reserve": 0.5, "cruise_speed_m_s": 5}, "launch_stagger_s": 20.0,
               "battery_swap_min": swap_s / 60},
        schedule={"horizon_h": 1500 / 3600})
    plan = plan_patrol(grids, cfg, cells=DEMO_CELLS, start_positions={f"drone0{i}": "DOCK-NE" for i in (1, 2, 3)})
    weights = ShiftWeights(revisit_s={"comprehensive": 600.0, "special": 300.0})
    for first in ("plan", "live"):
        r = simulate_shift(plan, 1500.0, weights, services={"DOCK-NE": DockService(swap_s=swap_s)},
                           first_cycle_from=first)
        gaps = r.gaps_s()
        worst = max(gaps, key=gaps.get)
        print(f"  demo, first cycle from the {first:4s}: {len(r.flown)} sorties, fewest visits of a cell "
              f"{min(r.visit_counts().values())} (target >= 2 {ok(min(r.visit_counts().values()) >= 2)}), longest gap "
              f"{gaps[worst]:.0f} s at {worst[0]} part {worst[1]} (target <= {DEMO_GAP_TARGET_S:.0f} s "
              f"{ok(gaps[worst] <= DEMO_GAP_TARGET_S)}), idle while a cell was overdue {r.idle_overdue_s:.0f} drone-s")


def city(grids, hours: float, swap_s: float) -> None:
    cfg = PlannerConfig().with_overrides(schedule={"horizon_h": hours}, fleet={"battery_swap_min": swap_s / 60})
    plan = plan_patrol(grids, cfg)
    t0 = time.perf_counter()
    SortieChooser(plan)  # distances between all parts, once per shift
    print(f"  city: {len(plan.cells)} cells, {len(plan.units)} parts, {len(plan.drones)} drones; chooser set-up "
          f"(all part distances) {time.perf_counter() - t0:.1f} s once per shift")
    kinds = {c.grid_id: c.kind for c in plan.grids.cells}
    services = {d.grid_id: DockService(swap_s=swap_s) for d in plan.grids.docks}
    for first in ("plan", "live"):
        t1 = time.perf_counter()
        r = simulate_shift(plan, hours * 3600.0, services=services, first_cycle_from=first)
        wall = time.perf_counter() - t1
        special = r.within_target_share("special")
        gaps = r.gaps_s()
        ordinary = sorted((v for k, v in gaps.items() if kinds[k[0]] != "special"), reverse=True)
        never = sum(1 for k in gaps if kinds[k[0]] != "special" and not r.visits.get(k))
        print(f"  city {hours:g} h, first cycle from the {first}: {len(r.flown)} sorties ({len(r.choose_s)} live choices), "
              f"model run {wall:.1f} s")
        print(f"    special cells within their revisit target {special * 100:.1f} % of the shift "
              f"(target >= {SPECIAL_SHARE_TARGET * 100:.0f} % {ok(special >= SPECIAL_SHARE_TARGET)}); ordinary "
              f"{r.within_target_share('comprehensive') * 100:.1f} %")
        print(f"    ordinary parts: longest gap {ordinary[0] / 3600:.2f} h, 10th longest {ordinary[9] / 3600:.2f} h, "
              f"median {statistics.median(ordinary) / 3600:.2f} h, never seen {never}")
        if r.choose_s:
            print(f"    choosing a sortie: median {statistics.median(r.choose_s):.3f} s, max {max(r.choose_s):.3f} s "
                  f"(target <= {CHOOSE_TARGET_S} s {ok(max(r.choose_s) <= CHOOSE_TARGET_S)})")
        print(f"    idle on a dock with a charged pack while a part was overdue: {r.idle_overdue_s / 3600:.2f} drone-h")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--city-hours", type=float, default=8.0)
    ap.add_argument("--skip-city", action="store_true")
    ap.add_argument("--swap-s", type=float, default=120.0, help="dock pack swap time")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"shift bench: {os.cpu_count()} CPUs, load average {load:.2f}, pack swap {args.swap_s:g} s")
    grids = load_grids(DANYANG_GRIDS)
    demo(grids, args.swap_s)
    if not args.skip_city:
        city(grids, args.city_hours, args.swap_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
