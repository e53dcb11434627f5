"""Returning home never crosses a no-fly zone of the sortie fence.

A planned-looking sortie flies round a no-fly zone that lies between its far end and home. Sent
home from the far end (the vehicle's battery failsafe, its GCS-link failsafe, the controller's
energy watch) the straight line home would cut through the zone; each return must reach home
with the sampled track never inside the zone and no "Fence Breached". Without avoidance the same
return breaches, so these tests can fail.
"""
from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, replace

import pytest
from shapely.geometry import Point, Polygon

from common.geo import distance_m, offset
from common.values import FenceZone, Mission, RallyPoint
from flight import fly_sortie
from flight.errors import FlightError, SortieAborted
from flight.events import EventKind
from tests.flight.procedures import assert_near, connect, get_sortie, takeoff_and_start, wait_event

SPEEDUP = 20.0
ZONE_NE = [(40, -15), (65, -15), (65, 15), (40, 15)]  # (north, east) m from home: 25 x 30 m
# round the zone's east side, over the top, back down its west side; the last leg home is clear
LEGS = [(20, 40), (85, 40), (100, 0), (85, -40), (20, -40)]
MARGIN_M = 10.0


def get_no_fly_sortie(home: tuple[float, float]) -> Mission:
    """The sortie with the no-fly zone as an exclusion polygon of its fence (as sortie_fence makes it)."""
    m = get_sortie(home, LEGS, alt_m=15.0, name="north loop")
    return replace(m, fence=(*m.fence, no_fly_zone(home)))


def no_fly_zone(home: tuple[float, float]) -> FenceZone:
    """The zone as an exclusion polygon of a fence."""
    return FenceZone(False, tuple(offset(*home, n, e) for n, e in ZONE_NE))


def sag_battery(sv) -> None:
    """The pack sags under BATT_LOW_VOLT now (BATT_LOW_TIMER 1 s, so it acts where it is sent home)."""
    sv.params.set("BATT_LOW_TIMER", 1)
    sv.faults.battery_fault(10.2)


def zone_polygon() -> Polygon:
    """The no-fly zone in metres east, north of home (the frame of the sampled track)."""
    return Polygon([(e, n) for n, e in ZONE_NE])


@dataclass
class ReturnFlight:
    """What one flight sent home showed: the sim vehicle, the controller, the sampled true track
    (east, north of home), the vehicle's texts and the controller's event kinds."""

    sv: object
    v: object
    track: list
    texts: list[str]
    said: list


@contextlib.asynccontextmanager
async def watch_track(sv):
    """Sample the vehicle's true position (east, north of home) every few ms for the whole block."""
    track: list[tuple[float, float]] = []

    async def sample() -> None:
        while True:
            track.append((sv.kin.east_m, sv.kin.north_m))
            await asyncio.sleep(0.005)
    task = asyncio.create_task(sample())
    try:
        yield track
    finally:
        task.cancel()


def assert_track_clear_of_zone(track, min_m: float) -> None:
    zone = zone_polygon()
    closest = min(zone.distance(Point(p)) for p in track)
    assert closest >= min_m, f"the track came {closest:.1f} m from the no-fly zone (allowed {min_m} m)"


def assert_track_entered_zone(track) -> None:
    zone = zone_polygon()
    assert any(zone.contains(Point(p)) for p in track), "the straight return never entered the zone"


async def landed_home(sv, v, home: tuple[float, float], track, log) -> ReturnFlight:
    """The drone is down and disarmed at home; what the flight showed, the link closed."""
    assert not sv.truth.armed and sv.truth.landed
    assert_near(sv.truth.lat, sv.truth.lon, home, 5.0, "landing point vs home")
    texts = [t.text for t in v.state.texts]
    said = [ev.kind for ev in iter(log.get_nowait, None)]
    await v.close()
    return ReturnFlight(sv, v, track, texts, said)


async def fly_and_send_home(sim_fleet, send_home, *, at_item: int = 4, remove_params=(), **sections):
    """Fly the sortie; when item `at_item` is reached call send_home(sim vehicle); wait until the
    sortie ends (aborted) and the drone is disarmed at home."""
    # RTL_LOIT_TIME 0: no 5 s hover over home before the descent (the track is what matters here)
    fleet = await sim_fleet(count=1, speedup=SPEEDUP, params={"RTL_LOIT_TIME": 0})
    sv = fleet[0]
    for name in remove_params:
        sv.params.remove(name)
    home = (sv.truth.lat, sv.truth.lon)
    v = await connect(sv.url, speedup=SPEEDUP, **sections)
    events = v.events()
    log = v.events()
    async with watch_track(sv) as track:
        sortie = asyncio.create_task(fly_sortie(v, get_no_fly_sortie(home)))
        try:
            reached = asyncio.create_task(wait_event(events, EventKind.ITEM_REACHED, 60, lambda ev: ev.seq == at_item))
            await asyncio.wait([reached, sortie], return_when=asyncio.FIRST_COMPLETED)
            if not reached.done():
                reached.cancel()
                raise AssertionError(f"the sortie ended before item {at_item}: {sortie.exception()!r}")
            reached.result()
            send_home(sv)
            with pytest.raises(SortieAborted):
                await asyncio.wait_for(sortie, 120)
        finally:
            if not sortie.done():
                sortie.cancel()
    return await landed_home(sv, v, home, track, log)


async def test_battery_failsafe_rtl_goes_round_the_no_fly_zone(sim_fleet):
    """The pack sags below BATT_LOW_VOLT beyond the zone: the vehicle's own RTL (object avoidance
    switched on by the controller at upload, after one reboot) flies round the zone to home."""
    f = await fly_and_send_home(sim_fleet, sag_battery, energy={"enabled": False}, avoidance={"margin_m": MARGIN_M})
    assert f.v.fence_avoidance is not None and f.v.fence_avoidance.onboard, f.v.fence_avoidance
    assert "Battery Failsafe" in f.texts and EventKind.RETURN_ROUTED not in f.said
    assert_track_clear_of_zone(f.track, 0.8 * MARGIN_M)
    assert f.sv.fence_breach_count == 0 and "Fence Breached" not in f.texts


async def test_gcs_link_cut_failsafe_rtl_goes_round_the_no_fly_zone(sim_fleet):
    """The radio drops on the way to the far end: the vehicle's GCS failsafe RTL, flown while we
    cannot reach it, still goes round the zone."""
    f = await fly_and_send_home(sim_fleet, lambda sv: sv.faults.cut_link(10.0), at_item=3,
                                energy={"enabled": False}, avoidance={"margin_m": MARGIN_M})
    assert f.sv.fs_gcs or "GCS Failsafe Cleared" in f.texts
    assert_track_clear_of_zone(f.track, 0.8 * MARGIN_M)
    assert f.sv.fence_breach_count == 0 and "Fence Breached" not in f.texts


async def test_energy_watch_return_is_flown_round_the_zone_when_the_vehicle_has_no_avoidance(sim_fleet):
    """A build without object avoidance (no OA_TYPE): the controller says so and, when the energy
    watch sends the drone home, flies GUIDED points round the zone, then RTL."""
    f = await fly_and_send_home(sim_fleet, lambda sv: sv.faults.drain_battery_to(12), remove_params=("OA_TYPE",),
                                avoidance={"margin_m": MARGIN_M})
    assert f.v.fence_avoidance is not None and not f.v.fence_avoidance.onboard
    assert "no OA_TYPE" in f.v.fence_avoidance.detail
    assert EventKind.LOW_BATTERY in f.said and EventKind.RETURN_ROUTED in f.said
    assert_track_clear_of_zone(f.track, 0.4 * MARGIN_M)
    assert f.sv.fence_breach_count == 0 and "Fence Breached" not in f.texts


async def test_battery_failsafe_on_a_vehicle_without_avoidance_is_taken_over_and_routed(sim_fleet):
    """No OA_TYPE on the vehicle and its own battery failsafe RTL heads straight for the zone: the
    controller takes the return over (GUIDED round the zone, then RTL) while it can reach it."""
    f = await fly_and_send_home(sim_fleet, sag_battery, remove_params=("OA_TYPE",),
                                energy={"enabled": False}, avoidance={"margin_m": MARGIN_M})
    assert f.v.fence_avoidance is not None and not f.v.fence_avoidance.onboard
    assert "Battery Failsafe" in f.texts and EventKind.RETURN_ROUTED in f.said
    assert_track_clear_of_zone(f.track, 0.4 * MARGIN_M)
    assert f.sv.fence_breach_count == 0 and "Fence Breached" not in f.texts


async def test_without_avoidance_the_straight_return_breaches_the_zone(sim_fleet):
    """Control: avoidance off, the same battery failsafe RTL flies straight through the zone and
    the vehicle reports the breach (what the other tests guard against)."""
    f = await fly_and_send_home(sim_fleet, sag_battery, energy={"enabled": False}, avoidance={"enabled": False})
    assert f.v.fence_avoidance is None
    assert_track_entered_zone(f.track)
    assert f.sv.fence_breach_count >= 1 and "Fence Breached" in f.texts


async def test_routed_return_gives_way_at_once_when_the_vehicle_is_switched_to_land(sim_fleet):
    """A vehicle without avoidance is being flown home round the zone in GUIDED when the pilot
    (or its own failsafe) switches it to LAND: the controller stops steering it at once - no leg
    timeout, no GUIDED or RTL sent after - and the drone lands where it was."""
    fleet = await sim_fleet(count=1, speedup=SPEEDUP)
    sv = fleet[0]
    sv.params.remove("OA_TYPE")
    home = (sv.truth.lat, sv.truth.lon)
    v = await connect(sv.url, speedup=SPEEDUP, energy={"enabled": False}, avoidance={"margin_m": MARGIN_M})
    try:
        events = v.events()
        await takeoff_and_start(v, get_no_fly_sortie(home))
        await wait_event(events, EventKind.ITEM_REACHED, 60, lambda ev: ev.seq == 4)
        assert not v.fence_avoidance.onboard
        routed = asyncio.create_task(v.action.return_home())
        await wait_event(events, EventKind.RETURN_ROUTED, 10)
        await v.wait_until(lambda s: s.mode == "GUIDED", 10, what="GUIDED for the routed return")
        await v.action.set_mode("LAND")
        with pytest.raises(FlightError, match="left GUIDED for LAND"):
            await asyncio.wait_for(routed, 10)  # the leg timeout is 300 s
        await v.wait_disarmed(timeout_s=60)
        assert v.state.mode == "LAND"
        assert distance_m(sv.truth.lat, sv.truth.lon, *home) > 30.0, "it was pulled home after the pilot's LAND"
    finally:
        await v.close()


async def fly_to_the_far_side_and_return(sim_fleet, **sections) -> ReturnFlight:
    """A sortie whose last waypoint lies beyond the zone and whose last item is RTL: the straight
    line home from there crosses the zone. Flown to the end (landed at home)."""
    fleet = await sim_fleet(count=1, speedup=SPEEDUP, params={"RTL_LOIT_TIME": 0})
    sv = fleet[0]
    sv.params.remove("OA_TYPE")  # a build without object avoidance
    home = (sv.truth.lat, sv.truth.lon)
    v = await connect(sv.url, speedup=SPEEDUP, energy={"enabled": False}, **sections)
    log = v.events()
    m = get_sortie(home, [(20, 40), (85, 40), (100, 0)], alt_m=15.0, name="far side")
    mission = replace(m, fence=(*m.fence, no_fly_zone(home)))
    async with watch_track(sv) as track:
        report = await asyncio.wait_for(fly_sortie(v, mission), 120)
    assert report.flown, report
    return await landed_home(sv, v, home, track, log)


async def test_mission_rtl_item_is_flown_round_the_zone_when_the_vehicle_has_no_avoidance(sim_fleet):
    """The mission ends with RTL beyond the zone on a vehicle without avoidance: when the vehicle
    starts that RTL item the controller flies the return round the zone instead; the sortie counts
    as flown and the drone lands at home."""
    f = await fly_to_the_far_side_and_return(sim_fleet, avoidance={"margin_m": MARGIN_M})
    assert EventKind.RETURN_ROUTED in f.said
    assert_track_clear_of_zone(f.track, 0.4 * MARGIN_M)
    assert f.sv.fence_breach_count == 0 and "Fence Breached" not in f.texts


async def test_without_avoidance_the_mission_rtl_item_breaches_the_zone(sim_fleet):
    """Control: the controller not watching no-fly zones, the same mission's RTL item flies straight
    through the zone (what the test above guards against)."""
    f = await fly_to_the_far_side_and_return(sim_fleet, avoidance={"enabled": False})
    assert EventKind.RETURN_ROUTED not in f.said
    assert_track_entered_zone(f.track)


STRIP_NE = [(-50, 20), (150, 20), (150, 35), (-50, 35)]  # a long zone east of home (a rail yard, say)
RALLY_NE = (100, 60)  # a rally point beyond it


async def fail_battery_west_of_the_strip(sim_fleet, **sections) -> tuple[ReturnFlight, tuple[float, float]]:
    """Fly north along the west side of the strip; at the far end the battery fails. The nearest
    of home and the rally points is the rally point across the strip: RTL heads there."""
    fleet = await sim_fleet(count=1, speedup=SPEEDUP, params={"RTL_LOIT_TIME": 0})
    sv = fleet[0]
    sv.params.remove("OA_TYPE")  # a build without object avoidance
    home = (sv.truth.lat, sv.truth.lon)
    rally = offset(*home, *RALLY_NE)
    v = await connect(sv.url, speedup=SPEEDUP, energy={"enabled": False}, **sections)
    log = v.events()
    events = v.events()
    m = get_sortie(home, [(50, 0), (100, 5)], alt_m=15.0, name="strip")
    strip = FenceZone(False, tuple(offset(*home, n, e) for n, e in STRIP_NE))
    mission = replace(m, fence=(*m.fence, strip), rally=(*m.rally, RallyPoint(*rally, 20.0)))
    async with watch_track(sv) as track:
        sortie = asyncio.create_task(fly_sortie(v, mission))
        try:
            await wait_event(events, EventKind.ITEM_REACHED, 60, lambda ev: ev.seq == 3)
            sag_battery(sv)
            with contextlib.suppress(SortieAborted):  # at the last item: flown or aborted, both fine here
                await asyncio.wait_for(sortie, 120)
        finally:
            if not sortie.done():
                sortie.cancel()
    return await landed_home(sv, v, rally, track, log), home


def strip_polygon() -> Polygon:
    return Polygon([(e, n) for n, e in STRIP_NE])


async def test_failsafe_rtl_to_a_rally_point_across_a_zone_is_routed_round_it(sim_fleet):
    """The line home is clear, but the vehicle's battery-failsafe RTL heads for the nearer rally
    point across the strip: the controller takes the return over, round the strip's end, and the
    drone lands at the rally point without touching the strip."""
    f, _ = await fail_battery_west_of_the_strip(sim_fleet, avoidance={"margin_m": MARGIN_M})
    assert "Battery Failsafe" in f.texts and EventKind.RETURN_ROUTED in f.said
    closest = min(strip_polygon().distance(Point(p)) for p in f.track)
    assert closest >= 0.4 * MARGIN_M, f"the track came {closest:.1f} m from the strip"
    assert f.sv.fence_breach_count == 0 and "Fence Breached" not in f.texts


async def test_without_avoidance_the_failsafe_rtl_crosses_to_the_rally_point(sim_fleet):
    """Control: not watching the zones, the same failsafe RTL flies straight across the strip."""
    f, _ = await fail_battery_west_of_the_strip(sim_fleet, avoidance={"enabled": False})
    assert any(strip_polygon().contains(Point(p)) for p in f.track), "the straight RTL never entered the strip"
