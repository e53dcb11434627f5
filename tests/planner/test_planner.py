"""Planning behaviour operators rely on: missions that fly, batteries respected, layers apart,
specials revisited, subsets re-planned from given docks."""
import math

import pytest

from common.values import (MAV_CMD_DO_CHANGE_SPEED, MAV_CMD_NAV_LAND, MAV_CMD_NAV_TAKEOFF, MAV_CMD_NAV_WAYPOINT,
                           MAV_FRAME_GLOBAL)
from mission_planner import PlannerConfig, PlanningError, load_grids, plan_patrol
from mission_planner.config import CoverageConfig

from .conftest import fast_config
from .geometry_checks import assert_clear_of_no_fly, assert_within_endurance, get_measured_coverage
from .gridkit import cell, collection, dock, small_grid, square


def test_small_grid_plan_is_safe_and_covers_every_cell():
    """Six cells, one cut by a no-fly zone: every cell >= 99 % seen, nothing enters the zone."""
    plan = plan_patrol(load_grids(small_grid()), fast_config(drones=2))
    measured = get_measured_coverage(plan)
    assert min(measured.values()) >= 0.99
    assert all(plan.cells[g].coverage >= 0.99 for g in plan.cells)
    assert_clear_of_no_fly(plan)
    assert_within_endurance(plan)


def test_sortie_mission_shape():
    """home (GLOBAL) at the dock, takeoff, speed, waypoints, then over the dock and LAND there."""
    plan = plan_patrol(load_grids(small_grid()), fast_config(drones=2))
    for s in plan.sorties:
        items = s.mission.items
        dock = plan.grids.dock(s.dock_id)
        assert items[0].frame == MAV_FRAME_GLOBAL and (items[0].lat, items[0].lon) == (round(dock.lat, 8), round(dock.lon, 8))
        assert items[1].command == MAV_CMD_NAV_TAKEOFF and items[1].alt_m == s.transit_alt_m
        assert items[2].command == MAV_CMD_DO_CHANGE_SPEED and items[2].param2 == 10.0
        assert all(it.command == MAV_CMD_NAV_WAYPOINT for it in items[3:-1])
        assert items[-1].command == MAV_CMD_NAV_LAND and (items[-1].lat, items[-1].lon) == (items[0].lat, items[0].lon)
        assert s.mission.fence[0].inclusion and all(not z.inclusion for z in s.mission.fence[1:])
        assert len(s.mission.fence) <= 1 + len(plan.grids.no_fly)
        assert {(r.lat, r.lon) for r in s.mission.rally} == {(round(d.lat, 8), round(d.lon, 8)) for d in plan.grids.docks}
        assert set(s.mission.grid_ids) == set(s.grid_ids)


def test_each_drone_transits_on_its_own_layer():
    """No two drones share a transit altitude; the steps are the configured 5 m."""
    plan = plan_patrol(load_grids(small_grid()), fast_config(drones=4))
    alts = [d.transit_alt_m for d in plan.drones]
    assert len(set(alts)) == 4 and sorted(alts) == [65.0, 70.0, 75.0, 80.0]
    for d in plan.drones:
        for s in d.sorties:
            flown = {it.alt_m for it in s.mission.items[1:-1] if it.command == MAV_CMD_NAV_WAYPOINT}
            assert flown <= {d.transit_alt_m, plan.config.coverage.altitude_m}


def test_too_many_layers_for_the_ceiling_is_a_config_error():
    """30 drones x 5 m from 65 m would reach 210 m: rejected before planning."""
    with pytest.raises(PlanningError, match="transit layers"):
        PlannerConfig.from_mapping({"fleet": {"drones": 30}})


def test_unknown_config_key_is_rejected_by_name():
    """A typo in a config section names the key."""
    with pytest.raises(PlanningError, match="altitud"):
        PlannerConfig.from_mapping({"coverage": {"altitud_m": 50}})


def test_special_cells_are_revisited_within_their_revisit_min():
    """A 30-min special cell near a dock is flown again and again over a 2 h horizon."""
    plan = plan_patrol(load_grids(small_grid()), fast_config(drones=2).with_overrides(schedule={"horizon_h": 2}))
    special = plan.cells["S1"]
    assert len(special.visits_s) >= 4
    assert special.worst_gap_s <= 30 * 60 and special.revisit_ok
    gaps = [b - a for a, b in zip(special.visits_s[:-1], special.visits_s[1:])]
    assert max(gaps) <= 30 * 60


def test_worst_gap_reports_the_longest_unseen_stretch():
    """Comprehensive cells are seen at least once; their worst gap is at least the first visit time."""
    plan = plan_patrol(load_grids(small_grid()), fast_config(drones=1))
    for gid, c in plan.cells.items():
        assert c.visits_s, gid
        assert c.worst_gap_s >= c.visits_s[0] - 1e-6
    assert plan.makespan_s >= max(c.visits_s[0] for c in plan.cells.values())


def test_subset_of_cells_from_given_docks():
    """Re-planning two cells for two named drones at dock D2 gives sorties from D2 only."""
    grids = load_grids(small_grid())
    plan = plan_patrol(grids, fast_config(), cells=["C5", "S1"], start_positions={"drone07": "D2", "drone09": "D2"})
    assert set(plan.cells) == {"C5", "S1"}
    assert [d.drone_id for d in plan.drones] == ["drone07", "drone09"]
    # Each keeps the layer it has in the full fleet, so it cannot meet drones still on old plans.
    assert [d.transit_alt_m for d in plan.drones] == [65.0 + 6 * 5, 65.0 + 8 * 5]
    assert {s.dock_id for s in plan.sorties} == {"D2"}
    assert {g for s in plan.sorties for g in s.grid_ids} == {"C5", "S1"}


def test_start_position_as_lat_lon_snaps_to_the_nearest_dock():
    """A drone given by position is based at the dock nearest to it."""
    grids = load_grids(small_grid())
    d2 = grids.dock("D2")
    plan = plan_patrol(grids, fast_config(), cells=["C5"], start_positions={"drone01": (d2.lat + 1e-4, d2.lon)})
    assert plan.drones[0].dock_id == "D2"


def test_unknown_cell_in_subset_is_an_error():
    with pytest.raises(PlanningError, match="NOPE"):
        plan_patrol(load_grids(small_grid()), fast_config(), cells=["NOPE"])


def test_cell_out_of_battery_reach_is_named():
    """A cell 9 km from the only dock cannot be reached on a 20 min battery: error names it."""
    grids = load_grids(collection(cell("FAR", square(9000, 0, 200)), cell("NEAR", square(0, 0, 200)), dock("D1", 0, -100)))
    with pytest.raises(PlanningError) as info:
        plan_patrol(grids, fast_config(drones=1))
    assert [p.grid_id for p in info.value.problems] == ["FAR"]


def test_big_cell_is_split_across_sorties_within_endurance():
    """A 1.2 x 1.2 km cell needs more than one battery: it is flown in parts, all within endurance."""
    grids = load_grids(collection(cell("BIG", square(0, 0, 1200)), dock("D1", -100, -100)))
    plan = plan_patrol(grids, fast_config(drones=2))
    assert plan.cells["BIG"].parts >= 2
    assert_within_endurance(plan)
    assert get_measured_coverage(plan)["BIG"] >= 0.99


def test_sample_plan_is_safe_and_complete(sample_plan):
    """The bundled Danyang grid: all 972 cells planned, >= 99 % each, no-fly zones respected."""
    assert len(sample_plan.cells) == 972
    assert sample_plan.min_coverage >= 0.99
    assert all(c.visits_s for c in sample_plan.cells.values() if c.flyable_area_m2 > 1)
    assert_clear_of_no_fly(sample_plan)
    assert_within_endurance(sample_plan)
    assert len({d.transit_alt_m for d in sample_plan.drones}) == len(sample_plan.drones) == 12


def test_ledger_geometry_is_exported(sample_plan):
    """A coverage ledger gets each cell's flyable polygon (metres) and the footprint width."""
    assert math.isclose(sample_plan.footprint_width_m, 104.31, abs_tol=0.01)
    flyable = sample_plan.flyable_polygons_m
    assert set(flyable) == set(sample_plan.cells)
    assert all(abs(flyable[g].area - c.flyable_area_m2) < 1.0 for g, c in sample_plan.cells.items())


def test_summary_carries_inputs_totals_and_cells(sample_plan):
    """plan.json content: inputs (camera, altitude, overlap, endurance, reserve, speed), per-drone sorties, per-cell figures."""
    s = sample_plan.summary()
    for key in ("camera", "altitude_m", "side_overlap", "endurance_min", "reserve", "cruise_speed_m_s"):
        assert key in s["inputs"]
    assert s["totals"]["sorties"] == sum(len(d["sorties"]) for d in s["drones"])
    first = s["drones"][0]["sorties"][0]
    assert {"grid_ids", "distance_m", "duration_s", "waypoints"} <= set(first)
    assert set(s["cells"]) == set(sample_plan.cells)
    assert all({"coverage", "worst_gap_s"} <= set(c) for c in s["cells"].values())


def test_coverage_config_changes_lane_spacing():
    """Lower altitude, narrower footprint: more lanes over the same cell."""
    grids = load_grids(small_grid())
    high = plan_patrol(grids, fast_config(drones=1))
    low_cfg = fast_config(drones=1).with_overrides(coverage={"altitude_m": 30})
    low = plan_patrol(grids, low_cfg)
    assert low.cells["C1"].lanes > high.cells["C1"].lanes
    assert CoverageConfig().altitude_m == 60


def test_same_input_gives_the_same_plan():
    """Repeatable: OR-Tools stops on a solution count, not the clock, so two runs agree."""
    grids = load_grids(small_grid())
    cfg = PlannerConfig().with_overrides(fleet={"drones": 2}, solver={"solution_limit": 30, "time_cap_s": 30})
    a = plan_patrol(grids, cfg)
    b = plan_patrol(grids, cfg)
    assert [(s.drone_id, s.grid_ids, s.start_s) for s in a.sorties] == [(s.drone_id, s.grid_ids, s.start_s) for s in b.sorties]
    assert [s.mission for s in a.sorties] == [s.mission for s in b.sorties]


def test_sample_special_cells_keep_their_revisit(sample_plan):
    """The sample's 61 special cells are each seen within their revisit_min all through the horizon."""
    specials = [c for c in sample_plan.cells.values() if c.kind == "special"]
    assert len(specials) == 61
    late = [c.grid_id for c in specials if not c.revisit_ok]
    assert not late
    for c in specials:
        inside = [v for v in c.visits_s if v <= sample_plan.horizon_s]
        assert len(inside) >= sample_plan.horizon_s / (c.revisit_min * 60) - 1


def test_higher_priority_cells_are_flown_first_in_the_cycle():
    """Three big cells: the priority-5 cell (the farthest) is in the first sortie, priority 1 comes last."""
    grids = load_grids(collection(
        cell("NEAR", square(0, 0, 650), priority=1),
        cell("MID", square(700, 0, 650), priority=3),
        cell("FAR", square(1400, 0, 650), priority=5),
        dock("D1", -100, -100)))
    plan = plan_patrol(grids, fast_config(drones=1).with_overrides(schedule={"horizon_h": 1}))
    assert "FAR" in plan.drones[0].sorties[0].grid_ids
    order = [g for s in plan.drones[0].sorties for g in s.grid_ids]
    assert order.index("FAR") < order.index("NEAR") and order.index("MID") < order.index("NEAR")


def test_degenerate_cells_plan_cleanly():
    """A 6 m cell, a two-block MultiPolygon cell, a cell with a hole touching its edge, and a cell
    wholly inside a no-fly zone: all planned without error; what can be seen is seen >= 99 %."""
    from .gridkit import feature, ll, no_fly

    a = [ll(x, y) for x, y in square(0, 400, 120)]
    b = [ll(x, y) for x, y in square(300, 400, 120)]
    # Hole touching the exterior at one vertex (valid OGC polygon, "self-touching").
    touching = cell("TOUCH", [(600, 0), (900, 0), (900, 300), (600, 300)],
                    holes_m=[[(750, 0), (800, 80), (700, 80)]])
    grids = load_grids(collection(
        cell("TINY", square(0, 0, 6)),
        feature("MULTI", "comprehensive", {"type": "MultiPolygon", "coordinates": [[a + [a[0]]], [b + [b[0]]]]}),
        touching,
        cell("INSIDE", square(1220, 20, 60)),
        no_fly("NF", square(1200, 0, 100)),
        dock("D1", 500, -200)))
    plan = plan_patrol(grids, fast_config(drones=2).with_overrides(schedule={"horizon_h": 1}))
    measured = get_measured_coverage(plan)
    for gid in ("TINY", "MULTI", "TOUCH"):
        assert measured[gid] >= 0.99 and plan.cells[gid].visits_s, gid
    inside = plan.cells["INSIDE"]
    assert inside.flyable_area_m2 < 1 and inside.lanes == 0 and not inside.visits_s
    assert "INSIDE" not in {g for s in plan.sorties for g in s.grid_ids}
    assert_clear_of_no_fly(plan)


def test_every_waypoint_is_inside_its_sortie_fence_and_the_fence_fits_a_vehicle(sample_plan):
    """Each sortie's own fence must not cut its route (all items inside, no-fly zones the route
    passes near are excluded) and must fit ArduCopter's fence storage (84 items)."""
    from shapely.geometry import Point, Polygon

    from mission_planner.missions import MAX_FENCE_ITEMS

    for s in sample_plan.sorties:
        assert len(s.mission.fence_items()) <= MAX_FENCE_ITEMS, f"{s.drone_id}/{s.sortie_id}"
        area = Polygon([(lon, lat) for lat, lon in s.mission.fence[0].vertices])
        for it in s.mission.items:
            if it.lat or it.lon:
                assert area.contains(Point(it.lon, it.lat)), f"{s.drone_id}/{s.sortie_id}"
        excluded = [Polygon([(lon, lat) for lat, lon in z.vertices]) for z in s.mission.fence[1:]]
        for z in sample_plan.grids.no_fly:
            if z.polygon_wgs84.intersects(area):
                assert any(e.equals_exact(z.polygon_wgs84, 1e-6) or e.buffer(1e-6).covers(z.polygon_wgs84)
                           for e in excluded), f"{z.grid_id} missing from {s.drone_id}/{s.sortie_id}"
