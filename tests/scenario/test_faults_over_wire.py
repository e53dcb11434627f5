"""Faults injected over the wire: the same link cut and battery fault whatever the vehicles are.

The vehicles here are started separately (as SITL or real drones would be) and reached with
`--connect-base`; the run's link relay silences drone 1's link and a PARAM_SET of
SIM_BATT_VOLTAGE drops drone 2's pack voltage. Each vehicle's own failsafe must bring it home,
and the report must show the faults and the failsafes. The embedded amqtt broker carries the
dispatch traffic (units announce themselves before the dispatcher subscribes).
"""
import asyncio
import socket

import pytest

from patrol import run_patrol
from runloop.linkrelay import LinkRelay
from runloop.scenario import parse_scenario

DOCK_NE = (32.0089932, 119.5948464, 10.0)


def get_failsafes(report: dict, drone_id: str) -> list[dict]:
    """The vehicle's own failsafe events for one drone, as the report lists them."""
    return [f for f in report["failsafes"] if f["drone_id"] == drone_id and f["event"] == "failsafe"]


@pytest.mark.e2e
async def test_link_cut_and_battery_fault_reach_vehicles_started_elsewhere(sim_fleet, tmp_path):
    """Two drones via --connect-base, the embedded broker restarting at 40 s: a 30 s link cut on
    drone 1 (longer than the controller's own link-loss verdict) trips its GCS failsafe, a battery
    fault at 20 % on drone 2 trips its low-battery failsafe; both return, and the report shows the
    faults and each failsafe with its cause and outcome."""
    vehicles = await sim_fleet(count=2, speedup=20.0, home=DOCK_NE, battery_mah=5200)  # the scenario's pack
    scenario = parse_scenario({
        "name": "faults-over-wire", "seed": 3, "cells": ["DY-C0713", "DY-C0534"], "duration_s": 240,
        "speedup": 20, "fleet": {"drones": 2, "airframe": {"pack_mah": 5200}, "dock": "DOCK-NE"}, "riders": {"count": 1},
        "faults": [{"at_s": 40, "broker_restart": True, "broker_down_s": 1.0},
                   {"at_s": 60, "link_cut": {"drone": 1, "seconds": 30}},
                   {"at_s": 60, "battery": {"drone": 2, "pct": 20}}],
        "pass": {}})
    report = await run_patrol(scenario, tmp_path, broker_url=None, live=False, connect_base=vehicles.urls[0])

    faults = {f["fault"]: f for f in report["faults"]}
    assert set(faults) == {"broker_restart", "link_cut", "battery"}, report["faults"]
    assert not report["stage_errors"], report["stage_errors"]
    assert faults["battery"]["voltage_v"] == pytest.approx(10.44, abs=0.01)
    assert not report.get("faults_refused"), report.get("faults_refused")
    drone1, drone2 = sorted({s["drone_id"] for s in report["sorties"]})
    assert get_failsafes(report, drone1), f"no GCS failsafe on {drone1}: {report['failsafes']}"
    assert any(f["event"] == "link_lost" for f in report["failsafes"] if f["drone_id"] == drone1)
    assert get_failsafes(report, drone2), f"no battery failsafe on {drone2}: {report['failsafes']}"
    assert vehicles[1].battery.forced_voltage_v is None, "the battery swap after landing ends the fault"
    aborted = {s["drone_id"] for s in report["sorties"] if s["outcome"].startswith("aborted")}
    assert aborted == {drone1, drone2}, report["sorties"]
    causes = {f["drone_id"]: f["cause"] for f in report["failsafe_summary"]}
    assert causes[drone1].startswith("GCS link lost (scripted link_cut"), causes
    assert causes[drone2].startswith("low battery (scripted battery"), causes
    assert all(f["outcome"].startswith("returned, landed") for f in report["failsafe_summary"])
