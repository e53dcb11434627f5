"""An alarm from outside (a 110 call) during a patrol, flown end to end: the scenario's alarm goes
over the real Mosquitto as patrol.alarm/1, the dispatcher opens a `reported` incident, the
patrolling drone leaves its lanes to hold over the point, the unit is alerted at once, reaches
it, and the drone goes back to its patrol. The report lists the alarm with its figures."""
import json

import pytest

from common.geo import distance_m
from patrol import run_patrol
from runloop.scenario import parse_scenario

pytestmark = [pytest.mark.mosquitto, pytest.mark.e2e]

CELL_CENTRE = (32.010484, 119.595162)  # DY-C0713, next to DOCK-NE
CALL_AT = (32.01330, 119.59520)  # 310 m north of it: outside the cell, inside the sortie's fence


def alarm_scenario(speedup: float = 40.0, **alarm) -> dict:
    return {
        "name": "alarm-call", "seed": 7, "cells": ["DY-C0713"], "duration_s": 600, "speedup": speedup,
        "fleet": {"drones": 1, "airframe": {"pack_mah": 8320}, "dock": "DOCK-NE", "on_stop": "hold"},
        "riders": {"count": 1, "radius_m": 1500, "speed_m_s": 8, "accept_delay_s": 2, "on_scene_s": 10},
        "alarms": [{"at_s": 60, "lat": CALL_AT[0], "lon": CALL_AT[1], "kind": "110-call",
                    "text": "caller reports a man climbing the substation fence", **alarm}],
        "pass": {"all_incidents_detected": False, "all_incidents_alerted": False, "no_alert_lost": True,
                 "sorties_completed": True}}


def assert_drone_held_over(alarm: dict) -> None:
    """Retasked on the call (the figures are bench material, not asserted here), then over the point."""
    assert alarm["drone_id"] == "drone01", alarm
    assert alarm["overwatch_failed"] is None, alarm
    assert alarm["retask_s"] >= 0 and alarm["retask_wall_ms"] > 0, alarm
    assert alarm["sent_s"] <= alarm["retasked_s"] < alarm["drone_on_scene_s"], alarm


def assert_unit_reached_it(alarm: dict) -> None:
    """Alerted at once, not after a camera saw it (before the drone is even there), then on scene;
    the drone went back to its patrol when the unit got there."""
    assert alarm["unit_id"] == "M01" and alarm["sent_s"] <= alarm["alerted_s"] < alarm["drone_on_scene_s"], alarm
    assert alarm["alerted_s"] < alarm["unit_on_scene_s"], alarm
    assert alarm["patrol_resumed_s"] is not None and alarm["patrol_resumed_s"] >= alarm["unit_on_scene_s"], alarm


async def test_a_called_in_alarm_brings_the_drone_and_a_unit(mosquitto_broker, tmp_path):
    scenario = parse_scenario(alarm_scenario())
    report = await run_patrol(scenario, tmp_path, broker_url=mosquitto_broker.url, live=False)
    assert report["passed"], "\n".join(report["failures"])
    on_disk = json.loads((tmp_path / "report.json").read_text())
    (alarm,) = on_disk["alarms"]
    assert alarm["incident_id"] == "scenario.alarm-1" and alarm["kind"] == "110-call"
    assert_drone_held_over(alarm)
    assert_unit_reached_it(alarm)
    assert alarm["confirmed_by"] == []  # nothing for a camera to see there: it stays unconfirmed
    assert "<h2>Alarms</h2>" in (tmp_path / "report.html").read_text()
    assert distance_m(*CALL_AT, *CELL_CENTRE) > 250
