"""The first patrol cycle: docks share the city so that none finishes long after the others."""
from mission_planner import PlannerConfig, load_grids, plan_patrol

from .gridkit import cell, collection, dock, square


def two_docks_one_with_revisits() -> dict:
    """A 5 km x 1.25 km strip of 250 m cells between two docks; the twelve cells nearest the west
    dock are special (revisited every 30 min), so its drones spend much of the first hour on
    revisit rounds and stand by between them, while the east dock's fly the cycle throughout."""
    cells = []
    for i in range(20):
        for j in range(5):
            special = i < 6 and j < 2
            cells.append(cell(f"C{i:02d}{j}", square(i * 250, j * 250, 250),
                              kind="special" if special else "comprehensive",
                              **({"revisit_min": 30} if special else {})))
    return collection(*cells, dock("WEST", -100, -100), dock("EAST", 5100, -100))


def first_cycle_end_per_dock(plan) -> dict[str, float]:
    ends: dict[str, float] = {}
    for s in plan.sorties:
        if s.purpose == "cycle" and s.cycle == 1:
            ends[s.dock_id] = max(ends.get(s.dock_id, 0.0), s.end_s)
    return ends


def test_docks_with_unequal_revisit_load_finish_the_first_cycle_together():
    # Greedy packing only (no OR-Tools): the same plan on any machine.
    cfg = PlannerConfig().with_overrides(solver={"use_ortools": False}, fleet={"drones": 4},
                                         schedule={"horizon_h": 1})
    plan = plan_patrol(load_grids(two_docks_one_with_revisits()), cfg)
    assert not plan.summary()["totals"]["special_cells_missing_revisit"]
    ends = first_cycle_end_per_dock(plan)
    assert set(ends) == {"WEST", "EAST"}
    # Balanced by drone-time alone, the east dock finished 95 min after the west one (makespan
    # 1.98 x the bound below); balanced by when each dock really finishes: within 5 min, 1.52 x.
    assert abs(ends["WEST"] - ends["EAST"]) <= 0.1 * max(ends.values()), ends
    # Issue 14's lower bound: the first cycle's sorties' flight time shared by the drones.
    bound_s = sum(s.duration_s for s in plan.sorties if s.purpose == "cycle" and s.cycle == 1) / len(plan.drones)
    assert plan.makespan_s <= 1.65 * bound_s, (plan.makespan_s / 60, bound_s / 60)
