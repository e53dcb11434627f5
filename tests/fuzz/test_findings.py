"""What the fuzzers found, one input each, so a regression fails with its name (issue 15)."""
from __future__ import annotations

import asyncio
import json

import pytest
from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from tests.fuzz.targets import grid_seeds


# ---------------------------------------------------------------------------------- grid files
def load_grid_text(tmp_path, data: bytes):
    from mission_planner import load_grids

    path = tmp_path / "grids.geojson"
    path.write_bytes(data)
    return load_grids(path), path


def test_a_grid_file_that_is_not_utf8_is_refused_by_name(tmp_path):
    """A binary or Latin-1 file: PlanningError naming the file and the byte, not UnicodeDecodeError."""
    from mission_planner import PlanningError

    with pytest.raises(PlanningError, match=r"grids.geojson is not UTF-8 text \(byte 2\)"):
        load_grid_text(tmp_path, b'{"\xe9t\xe9": 1}')


@pytest.mark.parametrize("field, value, says", [
    ("kind", {"x": 1}, "unknown kind {'x': 1}"),
    ("kind", ["dock"], "unknown kind ['dock']"),
    ("priority", float("nan"), "priority nan must be an integer 1-5"),
    ("priority", float("inf"), "priority inf must be an integer 1-5"),
    ("geometry.type", ["Polygon"], "geometry type ['Polygon'] is not a name"),
])
def test_grid_features_with_odd_json_types_are_problems_not_crashes(tmp_path, field, value, says):
    """A kind or geometry type that is a list or object, a NaN or infinite priority: each a named
    problem of its feature (PlanningError), as any other bad value."""
    from mission_planner import PlanningError

    data = grid_seeds()[0]
    feature = data["features"][-1]
    if field == "geometry.type":
        feature["geometry"]["type"] = value
    else:
        feature["properties"][field] = value
    with pytest.raises(PlanningError) as caught:
        load_grid_text(tmp_path, json.dumps(data, allow_nan=True).encode())
    assert any(says in str(p) for p in caught.value.problems), caught.value.problems


# ---------------------------------------------------------------------------------- scenario files
def test_a_scenario_file_that_is_not_utf8_is_refused_by_name(tmp_path):
    from runloop.errors import RunError
    from runloop.scenario import load_scenario

    path = tmp_path / "s.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(RunError, match=r"cannot read scenario .*s.yaml: not UTF-8 text \(byte 9\)"):
        load_scenario(path)


# ---------------------------------------------------------------------------------- simulator GCS link
class SimulatedGcsLink:
    """Vehicle 1 of the simulator behind one GCS connection; what it answers is decoded here."""

    def __init__(self):
        from sim.vehicles.link import GcsConnection
        from sim.vehicles.vehicle import SimulatedVehicle

        answers = self.answers = []
        decoder = mavlink2.MAVLink(None)

        class Captured(GcsConnection):
            def _write(self, data: bytes) -> None:
                answers.extend(decoder.parse_buffer(data) or ())

        self.vehicle = SimulatedVehicle(0, (32.0, 119.58, 10.0), lambda: 100.0, port=0, fast_start=True)
        self.conn = Captured(self.vehicle, "test")
        self.gcs = mavlink2.MAVLink(None, srcSystem=255, srcComponent=190)

    def send(self, msg) -> list:
        """Send one message from the GCS; the messages the vehicle answered with."""
        self.answers.clear()
        self.conn.feed(msg.pack(self.gcs))
        return list(self.answers)

    def get_answer(self, msg, mtype: str):
        found = [a for a in self.send(msg) if a.get_type() == mtype]
        assert found, f"no {mtype} in answer to {msg.get_type()}"
        return found[0]


@pytest.fixture
def sim_link(caplog):
    async def make():
        return SimulatedGcsLink()
    loop = asyncio.new_event_loop()
    link = loop.run_until_complete(make())
    yield link
    assert not [r for r in caplog.records if r.levelname == "ERROR"], "a handler failed"
    loop.close()


def test_a_mission_list_of_an_unknown_type_is_refused_as_ardupilot_does(sim_link):
    """MISSION_REQUEST_LIST / MISSION_REQUEST_INT for mission_type 197: MISSION_ACK UNSUPPORTED."""
    ack = sim_link.get_answer(mavlink2.MAVLink_mission_request_list_message(1, 1, 197), "MISSION_ACK")
    assert ack.type == mavlink2.MAV_MISSION_UNSUPPORTED and ack.mission_type == 197
    ack = sim_link.get_answer(mavlink2.MAVLink_mission_request_int_message(1, 1, 0, 197), "MISSION_ACK")
    assert ack.type == mavlink2.MAV_MISSION_UNSUPPORTED


def test_a_float_mission_item_off_the_earth_ends_the_upload_with_an_error(sim_link):
    """A MISSION_ITEM (float) whose x or y cannot be an int32 degE7 (1e30, NaN): INVALID_PARAM5_X /
    PARAM6_Y, nothing stored, and reading the list back afterwards works. (Rally points: a list the
    simulator takes before it has a position.)"""
    rally = 2
    for x, y, error in [(1e30, 119.0, mavlink2.MAV_MISSION_INVALID_PARAM5_X),
                        (32.0, float("nan"), mavlink2.MAV_MISSION_INVALID_PARAM6_Y)]:
        sim_link.send(mavlink2.MAVLink_mission_count_message(1, 1, 1, rally))
        item = mavlink2.MAVLink_mission_item_message(1, 1, 0, 3, 5100, 0, 0, 0, 0, 0, 0, x, y, 10, rally)
        ack = sim_link.get_answer(item, "MISSION_ACK")
        assert ack.type == error and ack.mission_type == rally
    count = sim_link.get_answer(mavlink2.MAVLink_mission_request_list_message(1, 1, rally), "MISSION_COUNT")
    assert count.count == 0


@pytest.mark.parametrize("command, params", [
    (mavlink2.MAV_CMD_DO_SET_HOME, [0, 0, 0, 0, 1.0, float("-inf"), 10]),
    (mavlink2.MAV_CMD_DO_SET_HOME, [float("nan"), 0, 0, 0, 32.0, 119.0, 10]),
    (mavlink2.MAV_CMD_DO_SET_ROI_LOCATION, [0, 0, 0, 0, float("nan"), 119.0, 10]),
    (mavlink2.MAV_CMD_DO_SET_MODE, [1, float("inf"), 0, 0, 0, 0, 0]),
])
def test_commands_with_values_that_cannot_be_are_denied(sim_link, command, params):
    """NaN or infinity where a command needs a whole number or a place on earth: COMMAND_ACK DENIED,
    and home stays where it was."""
    home = (sim_link.vehicle.home_lat, sim_link.vehicle.home_lon)
    ack = sim_link.get_answer(mavlink2.MAVLink_command_long_message(1, 1, command, 0, *params), "COMMAND_ACK")
    assert ack.command == command and ack.result == mavlink2.MAV_RESULT_DENIED
    assert (sim_link.vehicle.home_lat, sim_link.vehicle.home_lon) == home


def test_a_cell_with_a_stray_vertex_far_away_is_a_problem_not_a_geometry_crash(tmp_path):
    """A vertex at [0, 0] in a Danyang cell projects to infinity in the area's UTM zone: a named
    problem of that cell (PlanningError), not a GEOSException from make_valid. (With only a dock
    and that cell there are too few features for the far-from-the-rest check to see it first.)"""
    from mission_planner import PlanningError

    data = grid_seeds()[0]
    dock = next(f for f in data["features"] if f["properties"]["kind"] == "dock")
    cell = next(f for f in data["features"] if f["properties"]["grid_id"] == "DY-S001")
    cell["geometry"]["coordinates"][0][1] = [0, 0]  # as the fuzzer found it (seed 2026, input 7440)
    data["features"] = [dock, cell]
    with pytest.raises(PlanningError) as caught:
        load_grid_text(tmp_path, json.dumps(data).encode())
    problems = [str(p) for p in caught.value.problems if p.grid_id == cell["properties"]["grid_id"]]
    assert problems and "too far from the other features to map" in problems[0], caught.value.problems


# ---------------------------------------------------------------------------------- flight link
def test_with_signing_on_a_frame_of_an_unknown_message_id_does_not_get_through():
    """pymavlink hands back a message id it has no definition for before checking CRC or
    signature: the link drops it as a bad frame, so an unsigned forged frame never reaches the
    vehicle's handlers, whatever its id."""
    from tests.fuzz.targets import SignedFlightLinkTarget

    target = SignedFlightLinkTarget()
    try:
        forged = bytes([0xFD, 3, 0, 0, 7, 1, 1]) + (60000).to_bytes(3, "little") + b"abc" + b"\x00\x00"
        target.check(forged)
        assert target.handled == []
        assert target.vehicle.link.last_bad_reason == "unknown message id 60000"
    finally:
        target.close()
