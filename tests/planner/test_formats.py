"""Mission files: .plan (QGC Plan JSON) and .waypoints (QGC WPL 110) read back what was written."""
import json
import math
from pathlib import Path

import pytest

from common.values import (MAV_CMD_NAV_LAND, MAV_CMD_NAV_TAKEOFF, MAV_CMD_NAV_WAYPOINT, MAV_FRAME_GLOBAL,
                           FenceZone, Mission, MissionItem, RallyPoint)
from mission_planner import PlanningError, read_plan, read_waypoints, write_plan, write_waypoints


def get_mission() -> Mission:
    items = (
        MissionItem(MAV_CMD_NAV_WAYPOINT, 32.0125905, 119.5609117, 0.0, frame=MAV_FRAME_GLOBAL),
        MissionItem(MAV_CMD_NAV_TAKEOFF, 32.0125905, 119.5609117, 70.0),
        MissionItem(178, 0.0, 0.0, 0.0, param1=1.0, param2=10.0, param3=-1.0),
        MissionItem(MAV_CMD_NAV_WAYPOINT, 32.00511561, 119.54492185, 60.0),
        MissionItem(MAV_CMD_NAV_WAYPOINT, 32.00846698, 119.54414414, 60.0, param1=2.5, autocontinue=0),
        MissionItem(MAV_CMD_NAV_LAND, 32.0125905, 119.5609117, 0.0),
    )
    fence = (
        FenceZone(True, ((32.03, 119.53), (32.03, 119.63), (31.96, 119.63), (31.96, 119.53))),
        FenceZone(False, ((32.01, 119.55), (32.01, 119.56), (32.0, 119.555))),
        FenceZone(False, ((31.99, 119.59),), radius_m=150.0),
        FenceZone(True, ((32.0, 119.58),), radius_m=5000.0),
    )
    rally = (RallyPoint(32.0125905, 119.5609117, 70.0), RallyPoint(31.9874, 119.599, 70.0))
    return Mission(items, fence, rally, name="drone03/sortie02", drone_id="drone03", grid_ids=("DY-C0001", "DY-S004"))


def test_plan_file_round_trip_keeps_items_fence_rally_and_metadata(tmp_path):
    """Write .plan, read it back: the same Mission, fence polygons and circles and rally included."""
    mission = get_mission()
    path = write_plan(tmp_path / "s.plan", mission)
    assert read_plan(path) == mission


def test_plan_file_is_qgc_shaped(tmp_path):
    """QGC needs fileType Plan, home as plannedHomePosition, SimpleItems with 7 params."""
    data = json.loads(write_plan(tmp_path / "s.plan", get_mission()).read_text())
    assert data["fileType"] == "Plan" and data["mission"]["firmwareType"] == 3
    assert data["mission"]["plannedHomePosition"] == [32.0125905, 119.5609117, 0.0]
    assert len(data["mission"]["items"]) == 5  # home is not an item
    assert all(len(it["params"]) == 7 and it["type"] == "SimpleItem" for it in data["mission"]["items"])
    assert [p["inclusion"] for p in data["geoFence"]["polygons"]] == [True, False]
    assert data["geoFence"]["circles"][0]["circle"]["radius"] == 150.0
    assert len(data["rallyPoints"]["points"]) == 2


def test_waypoints_file_round_trip_keeps_items(tmp_path):
    """Write .waypoints, read it back: the same items, home as row 0."""
    mission = get_mission()
    path = write_waypoints(tmp_path / "s.waypoints", mission)
    lines = path.read_text().splitlines()
    assert lines[0] == "QGC WPL 110"
    assert lines[1].split("\t")[:4] == ["0", "1", "0", "16"]
    assert read_waypoints(path).items == mission.items


def test_planned_missions_round_trip(sample_plan, tmp_path):
    """Every format keeps a planned sortie exactly (coordinates are planned at 1e-8 degrees)."""
    for sortie in sample_plan.sorties[:5]:
        m = sortie.mission
        assert read_plan(write_plan(tmp_path / "a.plan", m)) == m
        assert read_waypoints(write_waypoints(tmp_path / "a.waypoints", m)).items == m.items


def test_bad_plan_and_waypoints_files_are_planning_errors(tmp_path):
    """Garbage, wrong header, wrong field count: PlanningError naming the file."""
    (tmp_path / "x.plan").write_text("{}")
    with pytest.raises(PlanningError, match="x.plan"):
        read_plan(tmp_path / "x.plan")
    (tmp_path / "y.waypoints").write_text("QGC WPL 120\n")
    with pytest.raises(PlanningError, match="WPL 110"):
        read_waypoints(tmp_path / "y.waypoints")
    (tmp_path / "z.waypoints").write_text("QGC WPL 110\n0\t1\t0\t16\n")
    with pytest.raises(PlanningError, match="line 2"):
        read_waypoints(tmp_path / "z.waypoints")
    (tmp_path / "c.plan").write_text(json.dumps({"fileType": "Plan", "mission": {"items": [{"type": "ComplexItem"}]}}))
    with pytest.raises(PlanningError, match="mission item 1: ComplexItem None holds no generated items"):
        read_plan(tmp_path / "c.plan")


DATA = Path(__file__).with_name("data")  # plans written by hand from the QGC / WPL format documentation


def test_qgc_survey_plan_flies_the_items_qgc_generated_with_its_fence_and_rally():
    """A QGroundControl .plan with a survey ComplexItem: home from plannedHomePosition, the
    survey's generated TransectStyleComplexItem.Items in place, QGC's null params as NaN (the
    vehicle decides what it keeps of them), inclusion polygon, exclusion circle, rally point."""
    m = read_plan(DATA / "qgc_survey.plan")
    assert [it.command for it in m.items] == [16, 22, 178, 16, 206, 16, 16, 16, 206, 21]
    assert (m.items[0].lat, m.items[0].lon, m.items[0].alt_m, m.items[0].frame) == (32.0, 119.58, 10.0, 0)
    assert math.isnan(m.items[1].param4) and math.isnan(m.items[3].param4)
    assert (m.items[3].lat, m.items[3].lon, m.items[3].alt_m) == (32.0005, 119.5805, 30.0)
    assert (m.items[2].param1, m.items[2].param2, m.items[2].param3) == (1.0, 6.0, -1.0)
    assert m.items[4].param1 == 25.0 and m.items[8].param1 == 0.0  # camera trigger distance on / off
    assert [(z.inclusion, z.is_circle) for z in m.fence] == [(True, False), (False, True)]
    assert m.fence[1].radius_m == 25 and m.rally == (RallyPoint(32.0008, 119.5792, 25.0),)


def test_qgc_corridor_scan_and_do_jump_target_becomes_an_item_number():
    """A CorridorScan contributes its generated items; a DO_JUMP names its target by doJumpId in
    the file (here 6, the corridor's second waypoint), which the vehicle needs as seq 3."""
    m = read_plan(DATA / "qgc_corridor_jump.plan")
    assert [it.command for it in m.items] == [16, 22, 16, 16, 16, 16, 177, 20]
    assert (m.items[6].param1, m.items[6].param2) == (3.0, 1.0)


def test_unknown_complex_item_and_dangling_jump_are_refused_naming_the_item(tmp_path):
    data = json.loads((DATA / "qgc_corridor_jump.plan").read_text())
    data["mission"]["items"][1]["complexItemType"] = "StructureScan"
    (tmp_path / "s.plan").write_text(json.dumps(data))
    with pytest.raises(PlanningError, match="mission item 2: ComplexItem 'StructureScan'"):
        read_plan(tmp_path / "s.plan")
    data = json.loads((DATA / "qgc_corridor_jump.plan").read_text())
    data["mission"]["items"][2]["params"][0] = 42
    (tmp_path / "j.plan").write_text(json.dumps(data))
    with pytest.raises(PlanningError, match="DO_JUMP to doJumpId 42, which no item has"):
        read_plan(tmp_path / "j.plan")


def test_mission_planner_waypoints_file_loads():
    """Mission Planner's QGC WPL 110 (CRLF line ends, six decimals, home as row 0)."""
    m = read_waypoints(DATA / "mission_planner.waypoints")
    assert [it.command for it in m.items] == [16, 22, 16, 178, 16, 19, 21]
    assert (m.items[0].lat, m.items[0].alt_m, m.items[2].lat, m.items[5].param1) == (32.0, 10.0, 32.0006, 5.0)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
lat8 = st.floats(-90, 90).map(lambda v: round(v, 8))
lon8 = st.floats(-180, 180).map(lambda v: round(v, 8))
items = st.builds(MissionItem, command=st.sampled_from([16, 19, 20, 21, 22, 178]), lat=lat8, lon=lon8,
                  alt_m=finite, frame=st.sampled_from([0, 3]), param1=finite, param2=finite, param3=finite,
                  param4=finite, autocontinue=st.sampled_from([0, 1]))
zones = st.one_of(
    st.builds(FenceZone, inclusion=st.booleans(), vertices=st.lists(st.tuples(lat8, lon8), min_size=3, max_size=8).map(tuple)),
    st.builds(FenceZone, inclusion=st.booleans(), vertices=st.tuples(st.tuples(lat8, lon8)),
              radius_m=st.floats(1, 10_000)),
)
# .plan keeps home as plannedHomePosition (position only): home is a plain GLOBAL waypoint.
homes = st.builds(MissionItem, command=st.just(16), lat=lat8, lon=lon8, alt_m=finite, frame=st.just(0))
missions = st.builds(Mission, items=st.tuples(homes, st.lists(items, max_size=12)).map(lambda t: (t[0], *t[1])),
                     fence=st.lists(zones, max_size=4).map(tuple),
                     rally=st.lists(st.builds(RallyPoint, lat8, lon8, finite), max_size=3).map(tuple),
                     name=st.text(max_size=12), drone_id=st.text(max_size=8),
                     grid_ids=st.lists(st.text(min_size=1, max_size=8), max_size=4).map(tuple))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(missions)
def test_any_mission_round_trips_through_both_formats(tmp_path_factory, mission):
    """Random missions (8-decimal coordinates, any finite params): .plan keeps all, .waypoints the items."""
    d = tmp_path_factory.mktemp("rt")
    assert read_plan(write_plan(d / "m.plan", mission)) == mission
    assert read_waypoints(write_waypoints(d / "m.waypoints", mission)).items == mission.items
