"""Stopping a patrol run while drones fly: each airborne drone is sent home (or told to hold) by
the controller before its link closes, never left to its GCS failsafe's straight-line RTL.

The drone is started separately (`--connect-base`, as SITL or a real drone would be) so it keeps
flying after the run has let go of it, and the test watches it throughout.
"""
import asyncio

import pytest

from patrol import run_patrol
from runloop.scenario import parse_scenario

DOCK_NE = (32.0089932, 119.5948464, 10.0)


async def watch_modes(sv, modes: list[tuple[str, bool]], done: asyncio.Event) -> None:
    """Every change of (mode, GCS failsafe active) of a simulated vehicle, in order."""
    while not done.is_set():
        now = (sv.truth.mode, sv.fs_gcs)
        if not modes or modes[-1] != now:
            modes.append(now)
        await asyncio.sleep(0.01)


async def stop_mid_sortie(sim_fleet, tmp_path, on_stop: str):
    """One drone flying its sortie when the run reaches its end (duration_s) mid-sortie; then the
    drone is watched a little longer, after the run has closed its link. Returns (vehicle, modes)."""
    vehicles = await sim_fleet(count=1, speedup=40.0, home=DOCK_NE, battery_mah=13000)
    sv = vehicles[0]
    scenario = parse_scenario({
        "name": f"stop-{on_stop}", "seed": 7, "cells": ["DY-C0713"], "duration_s": 110, "speedup": 40,
        "fleet": {"drones": 1, "dock": "DOCK-NE", "on_stop": on_stop}, "riders": {"count": 0}, "pass": {}})
    modes: list[tuple[str, bool]] = []
    done = asyncio.Event()
    watcher = asyncio.create_task(watch_modes(sv, modes, done))
    report = await run_patrol(scenario, tmp_path, broker_url=None, live=False, connect_base=vehicles.urls[0])
    await asyncio.sleep(0.5)  # 20 s of vehicle time without us: the GCS failsafe has had its chance
    done.set()
    await watcher
    assert not report["stage_errors"], report["stage_errors"]
    return sv, modes


@pytest.mark.e2e
async def test_stopped_run_sends_airborne_drones_home_before_letting_go(sim_fleet, tmp_path):
    """The run ends while the drone flies AUTO: the controller sends it home (RTL, routed round
    no-fly zones when the vehicle cannot plan round them) while its link still works, so RTL is
    underway before the vehicle's own GCS failsafe could have fired."""
    sv, modes = await stop_mid_sortie(sim_fleet, tmp_path, "return")
    assert ("AUTO", False) in modes, modes  # it was flying its sortie
    after_auto = modes[modes.index(("AUTO", False)) + 1:]
    assert after_auto and after_auto[0] == ("RTL", False), modes  # RTL by us, not by the failsafe
    assert sv.truth.armed and sv.truth.mode == "RTL"  # still on its way home, after we let go


@pytest.mark.e2e
async def test_stopped_run_can_leave_drones_holding(sim_fleet, tmp_path):
    """`fleet.on_stop: hold`: the drone stops in GUIDED where it is for an operator to take over."""
    sv, modes = await stop_mid_sortie(sim_fleet, tmp_path, "hold")
    after_auto = modes[modes.index(("AUTO", False)) + 1:]
    assert after_auto and after_auto[0] == ("GUIDED", False), modes
