"""Operator commands over MQTT (runloop/operator.py): every payload validated, errors named."""
import json

import pytest

from runloop.operator import OperatorError, apply_command, parse_command


def command(**fields) -> bytes:
    return json.dumps({"schema": "patrol.operator-command/1", "command_id": "op-1", **fields}).encode()


class ShiftDrones:
    """What apply_command drives on a run's DroneOps, recorded."""

    def __init__(self, shift=True):
        self.chooser = object() if shift else None
        self.plan = type("Plan", (), {"cells": {"DY-C0713": None, "DY-C0534": None}})()
        self.drones = {"drone01": None, "drone02": None}
        self.done = []

    def end_shift(self):
        self.done.append(("end_shift",))

    def patrol_now(self, cells):
        self.done.append(("patrol_now", tuple(cells)))

    def pause(self, drone_id, paused):
        self.done.append(("pause", drone_id, paused))


def test_each_command_reaches_the_drones():
    drones = ShiftDrones()
    apply_command(parse_command(command(command="patrol_cells", cells=["DY-C0534"])), drones)
    apply_command(parse_command(command(command="pause_drone", drone="2")), drones)
    apply_command(parse_command(command(command="resume_drone", drone="drone02")), drones)
    apply_command(parse_command(command(command="end_shift")), drones)
    assert drones.done == [("patrol_now", ("DY-C0534",)), ("pause", "drone02", True), ("pause", "drone02", False),
                           ("end_shift",)]


@pytest.mark.parametrize("payload, error", [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (command(command="launch_all"), "command: Input should be"),
    (command(command="patrol_cells"), "patrol_cells needs cells"),
    (command(command="pause_drone"), "pause_drone needs drone"),
    (command(command="end_shift", drone="1"), "end_shift takes no drone"),
    (command(command="end_shift", force=True), "force: unknown key"),
    (json.dumps({"schema": "patrol.operator-command/2", "command_id": "x", "command": "end_shift"}).encode(),
     "schema: Input should be"),
    (command(command="pause_drone", drone="../../etc"), "drone: String should match pattern"),
    (command(command="send_drone", drone="1", lat=32.0), "send_drone needs lon: degrees"),
    (command(command="send_drone", drone="1", lat=95.0, lon=119.5), "lat: Input should be less than or equal to 90"),
    (command(command="close_false_alarm", incident="i-1", unit="M01"), "close_false_alarm takes no unit"),
    (command(command="dispatch_unit", incident="i-1"), "dispatch_unit needs unit: a unit id"),
])
def test_bad_payloads_are_refused_naming_what_is_wrong(payload, error):
    with pytest.raises(ValueError, match=error):
        parse_command(payload)


def test_commands_the_run_cannot_carry_out_say_why():
    drones = ShiftDrones()
    with pytest.raises(OperatorError, match="cells not patrolled in this run: DY-X"):
        apply_command(parse_command(command(command="patrol_cells", cells=["DY-C0713", "DY-X"])), drones)
    with pytest.raises(OperatorError, match=r"no drone '7' \(this patrol flies drone01, drone02\)"):
        apply_command(parse_command(command(command="pause_drone", drone="7")), drones)
    with pytest.raises(OperatorError, match="one sweep"):
        apply_command(parse_command(command(command="patrol_cells", cells=["DY-C0713"])), ShiftDrones(shift=False))
    assert drones.done == []  # nothing half done
    one_sweep = ShiftDrones(shift=False)
    apply_command(parse_command(command(command="end_shift")), one_sweep)  # ending works either way
    apply_command(parse_command(command(command="pause_drone", drone="1")), one_sweep)  # so does holding a drone
    assert one_sweep.done == [("end_shift",), ("pause", "drone01", True)]


def test_doc_examples_are_accepted():
    """docs/mqtt-api.md's operator command examples validate (its result example names a real error)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "mqtt-api.md").read_text()
    commands = re.findall(r"```json operator-command\n(.*?)```", text, re.S)
    assert len(commands) == 3
    drones = ShiftDrones()
    for block in commands:
        apply_command(parse_command(block.encode()), drones)
    assert [d[0] for d in drones.done] == ["patrol_now", "pause", "end_shift"]
    result = json.loads(re.findall(r"```json operator-result\n(.*?)```", text, re.S)[0])
    with pytest.raises(OperatorError, match=re.escape(result["error"])):
        apply_command(parse_command(command(command="patrol_cells", cells=["DY-X"])), ShiftDrones())


def test_doc_examples_of_the_console_commands_validate():
    """docs/mqtt-api.md's send_drone / close_false_alarm / dispatch_unit examples are valid commands."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "mqtt-api.md").read_text()
    blocks = re.findall(r"```json operator-console-command\n(.*?)```", text, re.S)
    assert [parse_command(b.encode()).command for b in blocks] == ["send_drone", "close_false_alarm", "dispatch_unit"]


def parked_fleet():
    """A run's DroneOps with four drones that cannot be sent anywhere, each for its own reason."""
    from types import SimpleNamespace

    from common.dock_service import DroneState
    from common.values import Pose
    from runloop.drones import DroneOps, DroneRecord

    def vehicle(armed=True, alt=60.0, link=True, batt=80.0, mode="AUTO"):
        state = SimpleNamespace(armed=armed, link_ok=link, mode=mode, battery_remaining_pct=batt,
                                pose=Pose(0, 32.0, 119.59, alt, 0.0))
        return SimpleNamespace(state=state, retask=SimpleNamespace(active=None))

    ops = DroneOps.__new__(DroneOps)
    ops.scenario = SimpleNamespace(overwatch=SimpleNamespace(min_battery_pct=35.0, standoff_m=12.0, alt_m=None))
    ops.drones = {
        "drone01": DroneRecord("drone01", vehicle(armed=False, alt=0.0), "DOCK", state=DroneState.SWAPPING),
        "drone02": DroneRecord("drone02", vehicle(link=False), "DOCK"),
        "drone03": DroneRecord("drone03", vehicle(batt=20.0), "DOCK", state=DroneState.FLYING),
        "drone04": DroneRecord("drone04", vehicle(), "DOCK", state=DroneState.FLYING,
                               overwatch_incident="fire-7", watching={"fire-7": (32.0, 119.59)}),
    }
    return ops


@pytest.mark.parametrize("drone, error", [
    ("1", r"drone01 is on the ground \(swapping\): only a drone in the air can be sent"),
    ("drone02", "drone02: no link to the vehicle"),
    ("3", "drone03: battery 20 % is below the overwatch minimum of 35 %"),
    ("4", "drone04 holds overwatch over fire-7: close or dispatch that first"),
    ("9", r"no drone '9' \(this patrol flies drone01, drone02, drone03, drone04\)"),
])
async def test_a_drone_that_cannot_go_is_refused_naming_why(drone, error):
    from runloop.operator import carry_out

    ops = parked_fleet()
    with pytest.raises(OperatorError, match=error):
        await carry_out(parse_command(command(command="send_drone", drone=drone, lat=32.001, lon=119.591)), ops)
    assert all(not (r.overwatch_incident or "").startswith("point") for r in ops.drones.values())  # nothing half done


async def test_incident_commands_without_a_dispatcher_are_refused():
    from runloop.operator import carry_out

    with pytest.raises(OperatorError, match="close_false_alarm: this run has no dispatcher"):
        await carry_out(parse_command(command(command="close_false_alarm", incident="fire-1")), parked_fleet())
