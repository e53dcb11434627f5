"""Mission files: .plan (QGC Plan JSON) and .waypoints (QGC WPL 110) read back what was written."""
import json

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
    with pytest.raises(PlanningError, match="SimpleItem"):
        read_plan(tmp_path / "c.plan")


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
