"""Simulated riders (sim/riders.py) work the real API end to end."""
from __future__ import annotations

import pytest

import asyncio

from common.geo import distance_m, offset
from sim.riders import RiderFleet, RiderSimConfig
from tests.dispatch.conftest import ORIGIN, make_incident, wait_until

pytestmark = pytest.mark.mosquitto  # needs the real broker binary


async def test_simulated_riders_complete_an_incident(rig, tmp_path):
    """Three simulated units; the nearest accepts, rides over on the street grid, arrives, resolves."""
    await rig.start_dispatcher(ack_timeout_s=5)
    cfg = RiderSimConfig(speed_m_s=150, accept_delay_s=0.2, on_scene_s=0.3, location_hz=5, route="grid")
    units = [("S1", *offset(*ORIGIN, 200, 150)), ("S2", *offset(*ORIGIN, -2000, 0)), ("S3", *offset(*ORIGIN, 0, 2500))]
    fleet = RiderFleet(rig.broker_config, units, tmp_path / "fleet", cfg)
    stop = asyncio.Event()
    runner = asyncio.create_task(fleet.run(stop))
    try:
        await rig.wait_units_known("S1", "S2", "S3")
        incident = make_incident("fire-sim")
        await rig.publish(incident)
        await wait_until(lambda: fleet.stats.resolved == 1, 15, "the incident to be resolved by a simulated unit")
        await wait_until(lambda: "fire-sim" not in rig.dispatcher.cases, 3, "dispatcher to close the incident")
    finally:
        stop.set()
        await runner
    s1 = fleet.riders[0]
    assert fleet.stats.resolved_incidents == ["fire-sim"]
    assert (fleet.stats.accepted, fleet.stats.arrived, fleet.stats.alerts) == (1, 1, 1)
    assert distance_m(s1.lat, s1.lon, incident.lat, incident.lon) <= cfg.arrive_within_m
    assert rig.released == [("fire-sim", "arrived")]


async def test_declining_riders_push_the_incident_along(rig, tmp_path):
    """Units that always decline: each is asked once, then the incident escalates."""
    await rig.start_dispatcher(ack_timeout_s=5, escalation_retry_s=30)
    cfg = RiderSimConfig(accept_delay_s=0.1, decline_rate=1.0, location_hz=5)
    fleet = RiderFleet.around(rig.broker_config, ORIGIN, 3, 1000, tmp_path / "fleet", cfg)
    stop = asyncio.Event()
    runner = asyncio.create_task(fleet.run(stop))
    try:
        await rig.wait_units_known("M01", "M02", "M03")
        await rig.publish(make_incident("crowd-sim"))
        await wait_until(lambda: rig.get_case_status("crowd-sim") == "escalated", 10, "escalation")
    finally:
        stop.set()
        await runner
    assert fleet.stats.declined == 3 and fleet.stats.accepted == 0
    assert sorted(rig.dispatcher.cases["crowd-sim"].declined_by) == ["M01", "M02", "M03"]


async def test_a_simulated_unit_takes_the_next_incident_after_resolving_one(rig, tmp_path):
    """One unit: fire, ride, on scene (still reporting its position, as busy), resolved; then it
    is alerted to the next incident and handles that too."""
    await rig.start_dispatcher(ack_timeout_s=5, unit_silence_s=1.5)
    cfg = RiderSimConfig(speed_m_s=150, accept_delay_s=0.1, on_scene_s=2.0, location_hz=5)
    fleet = RiderFleet(rig.broker_config, [("S1", *offset(*ORIGIN, 300, 0))], tmp_path / "fleet", cfg)
    stop = asyncio.Event()
    runner = asyncio.create_task(fleet.run(stop))
    try:
        await rig.wait_units_known("S1")
        await rig.publish(make_incident("fire-a"))
        await wait_until(lambda: fleet.stats.arrived == 1, 10, "S1 on scene at fire-a")
        await asyncio.sleep(1.0)
        unit = rig.dispatcher.registry.get("S1")
        assert unit.status == "busy" and rig.dispatcher.registry.unavailable_reason(unit, 1) == "busy"
        await wait_until(lambda: fleet.stats.resolved == 1, 10, "fire-a resolved")
        await rig.publish(make_incident("car-b", north_m=-400))
        await wait_until(lambda: fleet.stats.resolved == 2, 15, "car-b resolved by the same unit")
    finally:
        stop.set()
        await runner
    assert fleet.stats.resolved_incidents == ["fire-a", "car-b"]
