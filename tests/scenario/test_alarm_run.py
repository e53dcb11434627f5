"""An alarm from outside (a 110 call) during a patrol, flown end to end: the scenario's alarm goes
over the real Mosquitto as patrol.alarm/1, the dispatcher opens a `reported` incident, the
patrolling drone leaves its lanes to hold over the point, the unit is alerted at once (before any
camera saw anything), the drone's camera then confirms it (a fire that starts once a drone hovers
there), the unit reaches it and the drone goes back to its patrol. The report lists the alarm."""
import json

import pytest

from common.geo import distance_m
from patrol import run_patrol
from runloop.scenario import parse_scenario

pytestmark = [pytest.mark.mosquitto, pytest.mark.e2e]

CELL_CENTRE = (32.010484, 119.595162)  # DY-C0713, next to DOCK-NE
CALL_AT = (32.0075, 119.5975)  # 400 m south-east of it: off the lanes, inside the sortie's fence


def alarm_scenario(speedup: float = 40.0) -> dict:
    """One drone sweeping DY-C0713; one unit 1.5 km north of the call (it gets there after the drone)."""
    return {
        "name": "alarm-call", "seed": 7, "cells": ["DY-C0713"], "duration_s": 900, "speedup": speedup,
        "fleet": {"drones": 1, "airframe": {"pack_mah": 8320}, "dock": "DOCK-NE", "on_stop": "hold"},
        "riders": {"count": 1, "radius_m": 2400, "speed_m_s": 8, "accept_delay_s": 2, "on_scene_s": 10},
        "alarms": [{"at_s": 60, "lat": CALL_AT[0], "lon": CALL_AT[1], "kind": "110-call",
                    "text": "caller reports smoke behind the depot"}],
        "incidents": [{"kind": "fire", "lat": CALL_AT[0], "lon": CALL_AT[1], "trigger": "hover", "name": "depot-fire"}],
        "pass": {"all_incidents_detected": True, "all_incidents_alerted": True, "all_incidents_reached": True,
                 "no_alert_lost": True, "sorties_completed": True, "max_false_alerts": 0}}


def assert_drone_held_over(alarm: dict) -> None:
    """Retasked on the call (the figures are bench material, not asserted here), then over the point."""
    assert alarm["drone_id"] == "drone01", alarm
    assert alarm["overwatch_failed"] is None, alarm
    assert alarm["retask_s"] >= 0 and alarm["retask_wall_ms"] > 0, alarm
    assert alarm["sent_s"] <= alarm["retasked_s"] < alarm["drone_on_scene_s"], alarm


def assert_unit_alerted_at_once_and_reached_it(alarm: dict) -> None:
    """Alerted on the call, before the drone was even there; then on scene; the drone went back
    to its patrol when the unit got there."""
    assert alarm["unit_id"] == "M01" and alarm["sent_s"] <= alarm["alerted_s"] < alarm["drone_on_scene_s"], alarm
    assert alarm["alerted_s"] < alarm["unit_on_scene_s"], alarm
    assert alarm["patrol_resumed_s"] is not None and alarm["patrol_resumed_s"] >= alarm["unit_on_scene_s"], alarm


def assert_confirmed_by_the_camera(alarm: dict, fire: dict) -> None:
    """The drone's vision found the fire and it was linked to the alarm: one incident, one alert."""
    assert alarm["confirmed_by"] == [fire["incident_id"]], (alarm, fire)
    assert alarm["drone_on_scene_s"] <= alarm["confirmed_s"], alarm
    assert fire["alerts"] == 1 and fire["alerted_s"] == alarm["alerted_s"] < fire["detected_s"], fire


async def test_a_called_in_alarm_brings_the_drone_and_a_unit(mosquitto_broker, tmp_path):
    scenario = parse_scenario(alarm_scenario())
    report = await run_patrol(scenario, tmp_path, broker_url=mosquitto_broker.url, live=False)
    assert report["passed"], "\n".join(report["failures"])
    on_disk = json.loads((tmp_path / "report.json").read_text())
    (alarm,), (fire,) = on_disk["alarms"], on_disk["incidents"]
    assert alarm["incident_id"] == "scenario.alarm-1" and alarm["kind"] == "110-call"
    assert_drone_held_over(alarm)
    assert_unit_alerted_at_once_and_reached_it(alarm)
    assert_confirmed_by_the_camera(alarm, fire)
    assert "<h2>Alarms</h2>" in (tmp_path / "report.html").read_text()
    assert distance_m(*CALL_AT, *CELL_CENTRE) > 350
