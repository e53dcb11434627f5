"""The live shift schedule: what a drone back on its dock flies next (mission_planner.next_sortie),
and whole shifts on the kinematic fleet model (mission_planner.shift_model)."""
import numpy as np
import pytest
import shapely

from common.dock_service import DockService, PackPool
from common.values import MAV_CMD_NAV_LAND
from mission_planner import plan_patrol
from mission_planner.next_sortie import ShiftWeights, SortieChooser
from mission_planner.shift_model import simulate_shift

from .conftest import fast_config

DEMO_CELLS = ["DY-C0713", "DY-C0534", "DY-C0266", "DY-C0017", "DY-C0537"]
ROSTER = {"drone01": "DOCK-NE", "drone02": "DOCK-NE", "drone03": "DOCK-NE"}
DEMO_TARGET = ShiftWeights(revisit_s={"comprehensive": 600.0, "special": 300.0})


@pytest.fixture(scope="module")
def demo_plan(sample_grids):
    """The demo scenario's plan: five cells, three drones on DOCK-NE, 8 min usable at 5 m/s."""
    cfg = fast_config(airframe={"pack_mah": 8320, "reserve": 0.5, "cruise_speed_m_s": 5}, launch_stagger_s=20.0).with_overrides(
        schedule={"horizon_h": 1500 / 3600})
    return plan_patrol(sample_grids, cfg, cells=DEMO_CELLS, start_positions=ROSTER)


@pytest.fixture(scope="module")
def special_plan(sample_grids):
    """Four special cells and four ordinary ones near DOCK-NE, two drones."""
    dock = sample_grids.dock("DOCK-NE").xy_m

    def near(kind, n):
        cells = [c for c in sample_grids.cells if c.kind == kind]
        cells.sort(key=lambda c: np.hypot(c.polygon_m.centroid.x - dock[0], c.polygon_m.centroid.y - dock[1]))
        return [c.grid_id for c in cells[:n]]

    cfg = fast_config(airframe={"pack_mah": 10400, "reserve": 0.3})
    return plan_patrol(sample_grids, cfg, cells=near("special", 4) + near("comprehensive", 4),
                       start_positions={"drone01": "DOCK-NE", "drone02": "DOCK-NE"})


def test_the_stalest_cells_are_flown_first(demo_plan):
    chooser = SortieChooser(demo_plan, DEMO_TARGET)
    now = 1200.0
    seen = {g: now - 60.0 for g in DEMO_CELLS}  # everything fresh ...
    seen["DY-C0534"] = now - 900.0  # ... but one cell, stale for 15 min
    sortie = chooser.next_sortie("drone02", now, seen)
    assert sortie is not None and "DY-C0534" in sortie.grid_ids
    assert sortie.duration_s <= demo_plan.config.fleet.sortie_budget_s
    assert sortie.start_s == now and sortie.purpose == "shift"


def test_a_sortie_is_flown_from_the_drone_dock_on_its_own_layer(demo_plan):
    chooser = SortieChooser(demo_plan, DEMO_TARGET)
    sortie = chooser.next_sortie("drone03", 700.0, {})
    items = sortie.mission.items
    dock = demo_plan.grids.dock("DOCK-NE")
    assert items[-1].command == MAV_CMD_NAV_LAND
    assert (round(items[-1].lat, 6), round(items[-1].lon, 6)) == (round(dock.lat, 6), round(dock.lon, 6))
    assert items[1].alt_m == sortie.transit_alt_m == demo_plan.drones[2].transit_alt_m


def test_cells_another_drone_flies_are_left_to_it(demo_plan):
    chooser = SortieChooser(demo_plan, DEMO_TARGET)
    sortie = chooser.next_sortie("drone01", 900.0, {}, claimed={"DY-C0534", "DY-C0713"})
    assert sortie is not None and not {"DY-C0534", "DY-C0713"} & set(sortie.grid_ids)


def test_nothing_is_flown_when_every_cell_was_just_seen(demo_plan):
    chooser = SortieChooser(demo_plan, DEMO_TARGET)
    assert chooser.next_sortie("drone01", 900.0, {g: 880.0 for g in DEMO_CELLS}) is None


def test_cells_near_a_recent_incident_are_flown_first(demo_plan):
    chooser = SortieChooser(demo_plan, ShiftWeights(revisit_s={"comprehensive": 600.0}, incident_radius_m=20.0))
    now = 1000.0
    seen = {g: now - 400.0 for g in DEMO_CELLS}
    far = chooser.next_sortie("drone01", now, seen)
    target = next(g for g in DEMO_CELLS if g not in far.grid_ids)
    c = demo_plan.grids.cell(target).polygon_m.centroid
    near = chooser.next_sortie("drone01", now, seen, hot_spots=[(c.x, c.y, now - 100.0)])
    assert target in near.grid_ids
    stale_news = chooser.next_sortie("drone01", now, seen, hot_spots=[(c.x, c.y, now - 5000.0)])
    assert stale_news.grid_ids == far.grid_ids  # the boost wears off


def test_shift_sorties_never_cross_a_no_fly_zone(sample_grids):
    corridor = sample_grids.no_fly_union_m
    dock = sample_grids.dock("DOCK-NE").xy_m
    crossed = sorted((c for c in sample_grids.cells if c.polygon_m.intersects(corridor)),
                     key=lambda c: c.polygon_m.distance(shapely.Point(dock)))
    plan = plan_patrol(sample_grids, fast_config(), cells=[c.grid_id for c in crossed[:6]],
                       start_positions={"drone01": "DOCK-NE", "drone02": "DOCK-NE"})
    chooser = SortieChooser(plan)
    for drone in ("drone01", "drone02"):
        sortie = chooser.next_sortie(drone, 3600.0, {})
        pts = sortie.route_m
        legs = shapely.linestrings(np.stack([pts[:-1], pts[1:]], axis=1))
        assert not shapely.intersects(legs, corridor).any(), drone


def test_demo_shift_sees_every_cell_twice_with_no_drone_idle_while_a_cell_is_overdue(demo_plan):
    result = simulate_shift(demo_plan, 1500.0, DEMO_TARGET, services={"DOCK-NE": DockService(swap_s=120.0)})
    assert min(result.visit_counts().values()) >= 2
    assert result.idle_overdue_s == 0.0
    assert max(result.choose_s) < 1.0


def test_special_cells_are_revisited_more_often_than_ordinary_ones(special_plan):
    result = simulate_shift(special_plan, 3 * 3600.0)
    kinds = {c.grid_id: c.kind for c in special_plan.grids.cells}
    visits = result.visit_counts()
    special = np.mean([v for g, v in visits.items() if kinds[g] == "special"])
    ordinary = np.mean([v for g, v in visits.items() if kinds[g] != "special"])
    assert special > ordinary >= 1


def test_a_lost_drone_has_its_cells_flown_by_another(demo_plan):
    lost_at = 200.0  # drone01 is mid-way through its first sortie
    result = simulate_shift(demo_plan, 1500.0, DEMO_TARGET, lose={"drone01": lost_at})
    when, left = result.lost["drone01"]
    assert when == lost_at and left  # it left cells unseen ...
    for g in left:  # ... and another drone saw each of them afterwards
        later = [t for (gg, _), ts in result.visits.items() if gg == g for t in ts if t > lost_at]
        assert later, g
    assert all(d != "drone01" or start < lost_at for d, _, start, _, _ in result.flown)


def test_an_incident_starting_after_the_first_sweep_is_passed_over(demo_plan):
    result = simulate_shift(demo_plan, 1500.0, DEMO_TARGET, services={"DOCK-NE": DockService(swap_s=120.0)})
    first_sweep_done = max(min(ts) for ts in result.visits.values())
    starts = first_sweep_done + 60.0  # a crowd gathers once every cell has been seen
    for cell in DEMO_CELLS:
        assert any(t > starts for (g, _), ts in result.visits.items() if g == cell for t in ts), cell


def test_dock_swaps_wait_for_a_charged_pack():
    pool = PackPool(DockService(swap_s=120.0, spare_packs=1, charge_s=1000.0))
    assert pool.swap(100.0) == 220.0  # the spare is charged
    assert pool.swap(300.0) == 100.0 + 120.0 + 1000.0 + 120.0  # the next waits for the first landed pack
    assert PackPool(DockService(swap_s=90.0)).swap(50.0) == 140.0  # no pack count: never short


def test_a_sortie_reaches_its_stalest_part_before_the_fresher_ones(demo_plan):
    """The loop dock -> parts -> dock is flown the way round that sees the most overdue part soonest."""
    chooser = SortieChooser(demo_plan, DEMO_TARGET)
    now = 1200.0
    for stale in DEMO_CELLS:
        seen = {g: now - 250.0 for g in DEMO_CELLS}
        seen[stale] = now - 900.0
        sortie = chooser.next_sortie("drone01", now, seen)
        order = [g for g, _, _ in sortie.parts]
        if len(set(order)) > 1:
            assert order[-1] != stale, (stale, order)


def test_demo_shift_with_the_live_schedule_leaves_no_cell_unseen_longer_than_700_s(demo_plan):
    result = simulate_shift(demo_plan, 1500.0, DEMO_TARGET, services={"DOCK-NE": DockService(swap_s=120.0)},
                            first_cycle_from="live")
    assert max(result.gaps_s().values()) <= 700.0
    assert result.idle_overdue_s == 0.0


def test_a_wait_counts_as_idle_from_when_a_cell_nobody_flies_falls_overdue(demo_plan):
    chooser = SortieChooser(demo_plan, DEMO_TARGET)
    seen = {g: 1000.0 for g in DEMO_CELLS}
    seen["DY-C0534"] = 550.0  # due at 1150 s (600 s target)
    assert chooser.overdue_wait_s(1100.0, 1200.0, seen) == 50.0
    assert chooser.overdue_wait_s(1100.0, 1200.0, seen, claimed={"DY-C0534"}) == 0.0  # another drone is on it
    assert chooser.overdue_wait_s(1000.0, 1100.0, seen) == 0.0
