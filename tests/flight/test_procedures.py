"""Flight procedures against the built-in simulator (sim/vehicles), sped up 10x.

Each test reads as what an operator does and what the vehicle must do in answer; the vehicle's
side follows real ArduCopter (../shared/ardupilot/BEHAVIOUR.md), so the same procedures run against SITL
(test_sitl.py) when ARDUPILOT_SITL is set.
"""
from __future__ import annotations

import asyncio

import pytest

from common.geo import distance_m, offset
from common.values import MissionType
from flight import Fleet, fly_sortie
from flight.errors import ModeChangeError, SortieAborted
from flight.events import EventKind
from tests.flight.procedures import (SPEEDUP, assert_near, connect, get_config, get_sortie, takeoff_and_start,
                                     wait_event)

SQUARE = [(80, 0), (80, 80), (0, 80)]


@pytest.mark.parametrize("loss_pct", [20, 30])
async def test_verified_upload_under_packet_loss(sim_fleet, loss_pct):
    """With `loss_pct` % of packets lost each way, a 40-waypoint sortie still uploads verified;
    read back over a clean link afterwards, the vehicle holds exactly what was sent."""
    fleet = await sim_fleet(count=1, speedup=SPEEDUP)
    sv = fleet[0]
    home = (sv.truth.lat, sv.truth.lon)
    v = await connect(sv.url, link={"command_timeout_s": 0.3, "command_attempts": 15})
    try:
        legs = [(20.0 * (i // 10), 15.0 * (i % 10)) for i in range(40)]
        mission = get_sortie(home, legs)
        sv.faults.set_packet_loss(loss_pct)
        await v.mission.upload_sortie(mission)
        sv.faults.set_packet_loss(0)
        await v.mission.verify_sortie(mission)
        got = await v.mission.download(MissionType.MISSION)
        assert len(got) == len(mission.items)
    finally:
        await v.close()


async def test_link_cut_mid_mission_vehicle_returns_home_itself(sim_fleet):
    """Cut the radio for 10 s (vehicle time) mid-mission: the vehicle's own GCS failsafe
    (FS_GCS_ENABLE set on connect) turns it home; the controller sees the link drop, gets it
    back, reports the vehicle in RTL, and the sortie counts as not flown."""
    speedup = 5.0
    fleet = await sim_fleet(count=1, speedup=speedup)
    sv = fleet[0]
    home = (sv.truth.lat, sv.truth.lon)
    v = await connect(sv.url, speedup=speedup)
    try:
        events = v.events()
        sortie = asyncio.create_task(fly_sortie(v, get_sortie(home, [(40, 0), (40, 40), (0, 40), (0, 160)], alt_m=15)))
        await wait_event(events, EventKind.ITEM_REACHED, 30, lambda ev: ev.seq == 2)
        sv.faults.cut_link(10.0)
        await wait_event(events, EventKind.LINK_LOST, 10)
        regained = await wait_event(events, EventKind.LINK_REGAINED, 20)
        assert "mode RTL" in regained.detail
        assert v.state.mode == "RTL" and sv.truth.mode == "RTL"
        with pytest.raises(SortieAborted) as err:
            await asyncio.wait_for(sortie, 60)
        assert "RTL" in str(err.value) or "Failsafe" in str(err.value)
        assert not v.state.armed and sv.truth.landed
        assert_near(sv.truth.lat, sv.truth.lon, home, 5.0, "landing point vs home")
    finally:
        await v.close()


async def test_overwatch_then_resume_continues_from_interrupted_item(sim_fleet):
    """Pull the drone off its patrol while it flies to item 3: it holds in GUIDED at the standoff
    point, at altitude, pointed at the incident (no sinking, unlike CIRCLE/LOITER); released, it
    returns to AUTO at item 3 and finishes the patrol."""
    fleet = await sim_fleet(count=1, speedup=SPEEDUP)
    sv = fleet[0]
    home = (sv.truth.lat, sv.truth.lon)
    v = await connect(sv.url)
    try:
        mission = get_sortie(home, SQUARE)
        await takeoff_and_start(v, mission)
        await v.wait_mission_item(2, timeout_s=30)
        await v.wait_current_item(3)
        incident = (home[0] + 0.0006, home[1] - 0.0006)
        ow = await v.retask.overwatch(*incident, standoff_m=40.0, alt_m=35.0, timeout_s=30)
        assert ow.interrupted_seq == 3
        assert v.state.mode == "GUIDED"
        with pytest.raises(ModeChangeError, match="throttle stick"):
            await v.action.set_mode("CIRCLE")  # unattended CIRCLE sinks: refused, still GUIDED
        await asyncio.sleep(10 / SPEEDUP)  # hold for 10 s of vehicle time
        t = sv.truth
        assert t.mode == "GUIDED" and t.armed
        assert_near(t.lat, t.lon, (ow.hold_lat, ow.hold_lon), 5.0, "hover point vs standoff point")
        assert distance_m(t.lat, t.lon, *incident) == pytest.approx(40.0, abs=5.0)
        assert t.alt_rel_m == pytest.approx(35.0, abs=2.0)
        seq = await v.retask.resume_patrol()
        assert seq == 3 and v.state.mode == "AUTO" and v.state.mission_seq == 3
        await v.wait_mission_item(3, timeout_s=30)
        await v.wait_disarmed(timeout_s=60)
        assert_near(sv.truth.lat, sv.truth.lon, home, 5.0, "landing point vs home")
    finally:
        await v.close()


async def test_overwatch_requested_during_takeoff_then_the_sortie_resumes(sim_fleet):
    """An incident comes in while the drone is still climbing to its 30 m survey altitude: the
    sortie does not sit out its climb timeout nor yank the drone into AUTO; the drone goes to a
    20 m standoff and holds; released, it flies the whole sortie from its first item and lands."""
    speedup = 20.0
    fleet = await sim_fleet(count=1, speedup=speedup)
    sv = fleet[0]
    home = (sv.truth.lat, sv.truth.lon)
    v = await connect(sv.url, speedup=speedup)
    try:
        events = v.events()
        sortie = asyncio.create_task(fly_sortie(v, get_sortie(home, SQUARE, alt_m=30.0)))
        await wait_event(events, EventKind.TOOK_OFF, 30)
        assert v.state.pose is not None and v.state.pose.alt_rel_m < 0.95 * 30.0
        incident = offset(*home, -60.0, 0.0)
        ow = await v.retask.overwatch(*incident, standoff_m=30.0, alt_m=20.0, timeout_s=30)
        assert ow.interrupted_seq == 1
        await asyncio.sleep(15 / speedup)  # hold for 15 s of vehicle time
        t = sv.truth
        assert t.mode == "GUIDED" and t.armed and not sortie.done()
        assert_near(t.lat, t.lon, (ow.hold_lat, ow.hold_lon), 5.0, "hover point vs standoff point")
        assert t.alt_rel_m == pytest.approx(20.0, abs=2.0)
        assert await v.retask.resume_patrol() == 1
        report = await asyncio.wait_for(sortie, 90)
        assert report.flown and report.items_reached == len(SQUARE) + 2
        assert_near(sv.truth.lat, sv.truth.lon, home, 5.0, "landing point vs home")
    finally:
        await v.close()


async def test_low_battery_sends_the_drone_home(sim_fleet):
    """Drain the pack to 16 % mid-patrol, 200 m from home: the drone is sent home (the controller's
    energy watch or the vehicle's battery failsafe, whichever is first), lands at home, and the
    sortie reports why it was not flown."""
    fleet = await sim_fleet(count=1, speedup=SPEEDUP)
    sv = fleet[0]
    home = (sv.truth.lat, sv.truth.lon)
    v = await connect(sv.url)
    try:
        events = v.events()
        sortie = asyncio.create_task(fly_sortie(v, get_sortie(home, [(150, 0), (150, 150), (0, 150)])))
        await wait_event(events, EventKind.ITEM_REACHED, 40, lambda ev: ev.seq == 2)
        sv.faults.drain_battery_to(16)
        low = await wait_event(events, EventKind.LOW_BATTERY, 10)
        assert "needed" in low.detail
        await v.wait_mode("RTL", timeout_s=10)
        with pytest.raises(SortieAborted):
            await asyncio.wait_for(sortie, 90)
        assert sv.truth.landed and not sv.truth.armed
        assert_near(sv.truth.lat, sv.truth.lon, home, 5.0, "landing point vs home")
    finally:
        await v.close()


async def test_vehicle_with_45_parameter_names(sim_fleet):
    """A fleet drone on ArduCopter 4.5 names: the controller finds the generation, sets its
    failsafes under the old names and converts units (WP_SPD m/s <-> WPNAV_SPEED cm/s)."""
    fleet = await sim_fleet(count=1, speedup=SPEEDUP, param_style="4.5")
    v = await connect(fleet[0].url)
    try:
        assert v.params.style == "4.5"
        assert await v.params.get("FS_GCS_ENABLE") == 1
        cm_s = await v.params.get("WPNAV_SPEED")
        assert await v.params.get("WP_SPD") == pytest.approx(cm_s / 100)
        await v.params.set("RTL_ALT_M", 30)
        assert await v.params.get("RTL_ALT") == pytest.approx(3000)
    finally:
        await v.close()


async def test_six_vehicles_fly_at_once(sim_fleet):
    """Six drones, one Fleet, one event loop: each flies its own sortie at the same time, every
    one is flown and back on the ground, and the fleet's event stream says so for each."""
    fleet = await sim_fleet(count=6, speedup=SPEEDUP)
    homes = [(sv.truth.lat, sv.truth.lon) for sv in fleet]
    sorties = [[get_sortie(h, [(40 + 10 * i, 0), (40 + 10 * i, 40)], alt_m=15 + i, name=f"s{i}")]
               for i, h in enumerate(homes)]
    async with Fleet.from_urls([sv.url for sv in fleet], config=get_config()) as controller:
        events = controller.events()
        results = await controller.fly(sorties)
        done = {ev.drone_id for ev in iter(events.get_nowait, None) if ev.kind == EventKind.SORTIE_DONE}
    assert done == {f"drone-{i + 1}" for i in range(6)}, "one merged event stream reports every drone"
    for i, per_drone in enumerate(results):
        assert len(per_drone) == 1 and not isinstance(per_drone[0], Exception), per_drone
        assert per_drone[0].flown
        assert fleet[i].truth.landed
