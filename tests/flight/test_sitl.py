"""The same flight procedures against a real ArduCopter SITL (marker `sitl`).

Set ARDUPILOT_SITL to the arducopter binary (sim.sitl launches it, home Danyang, on a free port)
or to the MAVLink URL of a SITL already running (tcp:127.0.0.1:5760), then
`pytest -m sitl tests/flight`. SITL_SPEEDUP (default 1) sets its speedup; it needs ~45 s of
vehicle time before it is armable.
"""
from __future__ import annotations

import asyncio
import os

import pytest

from common.geo import distance_m
from flight import fly_sortie
from flight.errors import SortieAborted
from flight.events import EventKind
from tests.fixtures.ports import free_port_block
from tests.flight.procedures import assert_near, connect, get_sortie, sitl_target, takeoff_and_start

pytestmark = pytest.mark.sitl
SPEEDUP = float(os.environ.get("SITL_SPEEDUP", "1"))


@pytest.fixture
async def sitl_url():
    """A running ArduCopter SITL: the given URL, or one started by sim.sitl and stopped afterwards."""
    target = sitl_target()
    if target.startswith(("tcp:", "udp")):
        yield target
        return
    try:
        from sim.sitl import SitlFleet
    except ImportError:
        pytest.skip("sim/sitl.py (the SITL launcher) is not available")
    async with SitlFleet(count=1, speedup=SPEEDUP, base_port=free_port_block(1), binary=target) as sitl:
        yield sitl[0].url


async def test_sitl_sortie_flown_end_to_end(sitl_url):
    """A planner-shaped sortie, verified upload, flown in AUTO, landed and disarmed at home."""
    v = await connect(sitl_url, speedup=SPEEDUP)
    try:
        await v.wait_until(lambda s: s.home is not None, 120, what="home position")
        home = v.state.home[:2]
        report = await fly_sortie(v, get_sortie(home, [(120, 0), (120, 120), (0, 120)]), progress=print)
        assert report.flown and not v.state.armed
        assert_near(v.state.pose.lat, v.state.pose.lon, home, 5.0, "landing point vs home")
    finally:
        await v.close()


async def test_sitl_overwatch_then_resume(sitl_url):
    """Overwatch holds in GUIDED at the standoff point; resume continues AUTO at the interrupted item."""
    v = await connect(sitl_url, speedup=SPEEDUP)
    try:
        await v.wait_until(lambda s: s.home is not None, 120, what="home position")
        home = v.state.home[:2]
        await takeoff_and_start(v, get_sortie(home, [(150, 0), (150, 150), (0, 150)]))
        await v.wait_mission_item(2, timeout_s=120)
        incident = (home[0] + 0.0006, home[1] - 0.0006)
        ow = await v.retask.overwatch(*incident, standoff_m=40.0, alt_m=35.0, timeout_s=120)
        await asyncio.sleep(10 / SPEEDUP)
        p = v.state.pose
        assert v.state.mode == "GUIDED" and abs(p.alt_rel_m - 35.0) < 2.0
        assert distance_m(p.lat, p.lon, ow.hold_lat, ow.hold_lon) < 5.0
        assert await v.retask.resume_patrol() == ow.interrupted_seq
        events = v.events()
        await v.wait_disarmed(timeout_s=300)
        assert all(ev.kind != EventKind.FAILSAFE for ev in iter(events.get_nowait, None))
    finally:
        await v.close()


async def test_sitl_battery_failsafe_rtl_goes_round_a_no_fly_zone(sitl_url):
    """The no-fly-zone sortie on real ArduCopter: the controller switches on OA_TYPE 2 (rebooting
    SITL once), the pack is made to sag beyond the zone (SIM_BATT_VOLTAGE) and the vehicle's own
    RTL reaches home without entering the zone or saying "Fence Breached"."""
    from shapely.geometry import Point

    from common.geo import LocalFrame
    from tests.flight.test_no_fly_returns import MARGIN_M, get_no_fly_sortie, zone_polygon

    v = await connect(sitl_url, speedup=SPEEDUP, energy={"enabled": False}, avoidance={"margin_m": MARGIN_M})
    try:
        await v.wait_until(lambda s: s.home is not None, 120, what="home position")
        home = v.state.home[:2]
        frame = LocalFrame(*home)
        track: list[tuple[float, float]] = []

        async def sample() -> None:
            while True:
                if v.state.pose is not None:
                    track.append(frame.to_en(v.state.pose.lat, v.state.pose.lon))
                await asyncio.sleep(0.05 / SPEEDUP)
        sampler = asyncio.create_task(sample())
        events = v.events()
        sortie = asyncio.create_task(fly_sortie(v, get_no_fly_sortie(home), progress=print))
        try:
            async for ev in events:
                if ev.kind == EventKind.ITEM_REACHED and ev.seq == 4:
                    break
            await v.params.set("BATT_LOW_TIMER", 1)
            await v.params.set("SIM_BATT_VOLTAGE", 10.2)
            with pytest.raises(SortieAborted):
                await asyncio.wait_for(sortie, 600)
            await v.wait_disarmed(timeout_s=300)
        finally:
            sampler.cancel()
            await v.params.set("SIM_BATT_VOLTAGE", 12.6)
        assert v.fence_avoidance is not None and v.fence_avoidance.onboard
        assert min(zone_polygon().distance(Point(p)) for p in track) >= 0.5 * MARGIN_M
        assert all("Fence Breached" not in t.text for t in v.state.texts)
        assert_near(v.state.pose.lat, v.state.pose.lon, home, 5.0, "landing point vs home")
    finally:
        await v.close()
