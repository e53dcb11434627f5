"""Arming, modes, takeoff, AUTO missions, GUIDED retask and RTL, as an operator would fly them."""
import asyncio

from common.geo import distance_m, offset
from tests.sim.conftest import takeoff, wait_until
from tests.sim.test_mission_protocol import HOME, patrol_mission


async def test_arming_too_early_is_refused_with_the_reason(sim_fleet, gcs_link):
    """Before the EKF uses GPS: ARM -> 4 and "Arm: Need Position Estimate"; TAKEOFF disarmed -> 4."""
    fleet = await sim_fleet(count=1, fast_start=False, speedup=5.0)
    link = await gcs_link(fleet[0].url)
    await link.set_mode(4)
    start = link.mark()
    assert await link.command(400, 1) == 4
    text = await link.wait_for("STATUSTEXT", lambda m: m.text.startswith("Arm:"), 2, start)
    assert text.severity == 2
    await link.wait_text("Arm: Need Position Estimate", since=start)
    assert await link.command(22, 0, 0, 0, 0, 0, 0, 20) == 4
    assert not fleet[0].truth.armed


async def test_modes_by_command_and_legacy_set_mode(sim_fleet, gcs_link):
    """DO_SET_MODE is acked then shown in HEARTBEAT; unknown mode -> 4 + text; SET_MODE has no ACK."""
    fleet = await sim_fleet(count=1)
    link = await gcs_link(fleet[0].url)
    start = link.mark()
    assert await link.set_mode(5) == 0
    hb = await link.wait_heartbeat(lambda m: m.custom_mode == 5, 2)
    assert hb.base_mode & 8  # LOITER sets the guided-enabled flag like ArduCopter
    assert await link.set_mode(77) == 4
    await link.wait_text("No such mode 77", since=start)
    start = link.mark()
    link.mav.set_mode_send(1, 1, 4)
    await link.wait_heartbeat(lambda m: m.custom_mode == 4, 2)
    await asyncio.sleep(0.2)
    assert not link.messages("COMMAND_ACK", start)


async def test_takeoff_then_auto_mission_reports_each_item_and_lands_home(sim_fleet, gcs_link):
    """GUIDED takeoff, AUTO: "Mission: N ..." texts, MISSION_ITEM_REACHED per item, RTL lands and disarms."""
    fleet = await sim_fleet(count=1, speedup=20.0)
    link = await gcs_link(fleet[0].url)
    assert await link.upload(patrol_mission(alt_m=20)) == 0
    await takeoff(link, fleet, 20)
    start = link.mark()
    assert await link.set_mode(3) == 0
    await link.wait_for("MISSION_ITEM_REACHED", lambda m: m.seq == 4, 15, start)
    texts = link.texts(start)
    assert texts[:4] == ["Mission: 1 Takeoff", "Mission: 2 WP", "Reached command #2", "Mission: 3 WP"]
    assert [m.seq for m in link.messages("MISSION_ITEM_REACHED", start)] == [1, 2, 3, 4]
    await link.wait_heartbeat(lambda m: not m.base_mode & 128, 20)
    truth = fleet[0].truth
    assert truth.landed and not truth.armed
    assert distance_m(truth.lat, truth.lon, *HOME) < 3.0
    later = link.texts(start)
    # like AP_Mission, the next NAV command starts before the DO commands leading up to it
    assert later[later.index("Mission: 6 RTL") + 1] == "Mission: 5 ChangeSpeed"
    assert "Disarming motors" in later


async def test_leaving_auto_and_coming_back_resumes_the_interrupted_item(sim_fleet, gcs_link):
    """GUIDED mid-mission keeps the current item; AUTO again flies to that same item."""
    fleet = await sim_fleet(count=1, speedup=10.0)
    link = await gcs_link(fleet[0].url, streams_hz=4)
    assert await link.upload(patrol_mission(alt_m=20)) == 0
    await takeoff(link, fleet, 20)
    assert await link.set_mode(3) == 0
    await link.wait_text("Mission: 3 WP", timeout=10)
    assert await link.set_mode(4) == 0
    cur = await link.wait_for("MISSION_CURRENT", lambda m: m.mission_state == 2, 2)
    assert cur.seq == 3 and cur.mission_mode == 0
    start = link.mark()
    assert await link.set_mode(3) == 0
    await link.wait_text("Mission: 3 WP", since=start, timeout=2)
    assert await link.command(224, 4) == 0
    await link.wait_text("Mission: 4 WP", since=start, timeout=2)


async def test_guided_reposition_by_command_int_only_and_refused_outside_the_fence(sim_fleet, gcs_link):
    """DO_REPOSITION: COMMAND_LONG -> 3, COMMAND_INT -> 0 and the vehicle goes there; outside fence -> 4."""
    fleet = await sim_fleet(count=1, speedup=10.0)
    link = await gcs_link(fleet[0].url)
    await takeoff(link, fleet, 15)
    ta, tb = offset(*HOME, 80, 40)
    assert await link.command(192, -1, 1, 0, float("nan"), ta, tb, 25) == 3
    assert await link.command_int(192, 6, -1, 1, 0, float("nan"), int(ta * 1e7), int(tb * 1e7), 25) == 0
    await wait_until(lambda: distance_m(fleet[0].truth.lat, fleet[0].truth.lon, ta, tb) < 2.0, 15, "reposition")
    assert abs(fleet[0].truth.alt_rel_m - 25) < 1.5
    assert await link.command_int(34, 6, 30, 3, 0, 0, int(ta * 1e7), int(tb * 1e7), 35) == 3  # DO_ORBIT
    box = [offset(*HOME, dn, de) for dn, de in [(-150, -150), (150, -150), (150, 150), (-150, 150)]]
    assert await link.upload([{"cmd": 5001, "p": [4, 0, 0, 0], "lat": a, "lon": b, "frame": 0} for a, b in box],
                             mission_type=1) == 0
    assert await link.command(207, 1) == 0
    fa, fb = offset(*HOME, 400, 0)
    assert await link.command_int(192, 6, -1, 1, 0, float("nan"), int(fa * 1e7), int(fb * 1e7), 25) == 4
    # a target inside is still fine, and SET_POSITION_TARGET_GLOBAL_INT moves it too
    ia, ib = offset(*HOME, -50, -50)
    link.mav.set_position_target_global_int_send(0, 1, 1, 6, 0b0000111111111000, int(ia * 1e7), int(ib * 1e7), 20,
                                                 0, 0, 0, 0, 0, 0, 0, 0)
    await wait_until(lambda: distance_m(fleet[0].truth.lat, fleet[0].truth.lon, ia, ib) < 2.0, 20, "position target")


async def test_roi_commands_point_the_vehicle_at_the_incident(sim_fleet, gcs_link):
    """DO_SET_ROI_LOCATION (COMMAND_INT) -> 0 and the heading turns to the ROI; ROI_NONE -> 0."""
    fleet = await sim_fleet(count=1, speedup=10.0)
    link = await gcs_link(fleet[0].url)
    await takeoff(link, fleet, 15)
    ra, rb = offset(*HOME, 0, 100)  # due east
    assert await link.command_int(195, 6, 0, 0, 0, 0, int(ra * 1e7), int(rb * 1e7), 0) == 0
    sa, sb = offset(*HOME, 10, 0)
    assert await link.command_int(192, 6, -1, 1, 0, float("nan"), int(sa * 1e7), int(sb * 1e7), 15) == 0
    await wait_until(lambda: abs(fleet[0].truth.heading_deg - 95) < 10, 10, "heading towards ROI")
    assert await link.command(197) == 0


async def test_rtl_climbs_returns_lands_and_disarms(sim_fleet, gcs_link):
    """RTL from 60 m out at 8 m: climbs to RTL_ALT_M (15 m), returns, lands, "Disarming motors"."""
    fleet = await sim_fleet(count=1, speedup=20.0)
    link = await gcs_link(fleet[0].url, streams_hz=4)
    await takeoff(link, fleet, 8)
    ta, tb = offset(*HOME, 60, 0)
    assert await link.command_int(192, 6, -1, 1, 0, float("nan"), int(ta * 1e7), int(tb * 1e7), 8) == 0
    await wait_until(lambda: distance_m(fleet[0].truth.lat, fleet[0].truth.lon, ta, tb) < 3.0, 15, "out")
    start = link.mark()
    peak = 0.0
    assert await link.set_mode(6) == 0
    while fleet[0].truth.armed:
        peak = max(peak, fleet[0].truth.alt_rel_m)
        await asyncio.sleep(0.05)
        assert link.mark() - start < 100000
    assert 14.0 <= peak <= 16.5
    assert distance_m(fleet[0].truth.lat, fleet[0].truth.lon, *HOME) < 3.0
    await link.wait_text("Disarming motors", since=start, timeout=2)
    cur = await link.wait_for("MISSION_CURRENT", None, 2)
    assert cur.seq == 0


async def test_armed_on_the_ground_without_takeoff_disarms_after_disarm_delay(sim_fleet, gcs_link):
    """Armed in GUIDED with no takeoff: "Disarming motors" after DISARM_DELAY (10 s), as ArduCopter."""
    from tests.sim.conftest import wait_armable_and_arm

    fleet = await sim_fleet(count=1, speedup=10.0)
    link = await gcs_link(fleet[0].url)
    await wait_armable_and_arm(link, fleet)
    t_armed = fleet[0].now
    start = link.mark()
    await link.wait_heartbeat(lambda m: not m.base_mode & 128, timeout=3)
    assert 9.5 <= fleet[0].now - t_armed <= 11.5
    assert "Disarming motors" in link.texts(start)


async def test_loiter_time_holds_then_land_item_lands_there_and_disarms(sim_fleet, gcs_link):
    """LOITER_TIME 6 s holds that long before "Reached command"; a LAND item lands at its point."""
    fleet = await sim_fleet(count=1, speedup=20.0)
    link = await gcs_link(fleet[0].url)
    la, lb = offset(*HOME, 40, 0)
    ma, mb = offset(*HOME, 40, 30)
    items = [{"cmd": 16, "lat": HOME[0], "lon": HOME[1], "alt": 0, "frame": 0}, {"cmd": 22, "alt": 12},
             {"cmd": 19, "p": [6, 0, 0, 0], "lat": la, "lon": lb, "alt": 12},
             {"cmd": 21, "lat": ma, "lon": mb, "alt": 0}]
    assert await link.upload(items) == 0
    await takeoff(link, fleet, 12)
    start = link.mark()
    assert await link.set_mode(3) == 0
    await link.wait_text("Mission: 2 LoitTime", since=start, timeout=5)
    await wait_until(lambda: distance_m(fleet[0].truth.lat, fleet[0].truth.lon, la, lb) < 2.0, 10, "at loiter point")
    t_at = fleet[0].now
    await link.wait_text("Reached command #2", since=start, timeout=5)
    assert fleet[0].now - t_at >= 5.0
    await link.wait_heartbeat(lambda m: not m.base_mode & 128, timeout=15)
    assert distance_m(fleet[0].truth.lat, fleet[0].truth.lon, ma, mb) < 2.0


async def test_pause_and_continue_an_auto_mission(sim_fleet, gcs_link):
    """DO_PAUSE_CONTINUE 0 stops the vehicle in AUTO (mission paused); 1 continues the same item."""
    fleet = await sim_fleet(count=1, speedup=20.0)
    link = await gcs_link(fleet[0].url, streams_hz=4)
    assert await link.upload(patrol_mission(alt_m=15)) == 0
    await takeoff(link, fleet, 15)
    assert await link.set_mode(3) == 0
    await link.wait_text("Mission: 2 WP", timeout=5)
    await wait_until(lambda: fleet[0].truth.groundspeed_m_s > 5, 5, "cruising")
    assert await link.command(193, 0) == 0
    await wait_until(lambda: fleet[0].truth.groundspeed_m_s < 0.2, 5, "stopped")
    cur = await link.wait_for("MISSION_CURRENT", None, 2)
    assert (cur.seq, cur.mission_state) == (2, 4)
    start = link.mark()
    assert await link.command(193, 1) == 0
    await link.wait_for("MISSION_ITEM_REACHED", lambda m: m.seq == 2, 10, start)


async def test_auto_from_the_ground_needs_a_takeoff_item(sim_fleet, gcs_link):
    """Armed on the ground, AUTO with a mission that does not start with TAKEOFF -> 4 + "Auto: Missing Takeoff Cmd"."""
    from tests.sim.conftest import wait_armable_and_arm

    fleet = await sim_fleet(count=1)
    link = await gcs_link(fleet[0].url)
    wp = offset(*HOME, 30, 0)
    assert await link.upload([{"cmd": 16, "lat": HOME[0], "lon": HOME[1], "alt": 0, "frame": 0},
                              {"cmd": 16, "lat": wp[0], "lon": wp[1], "alt": 10}]) == 0
    await wait_armable_and_arm(link, fleet)
    start = link.mark()
    assert await link.set_mode(3) == 4
    await link.wait_text("Auto: Missing Takeoff Cmd", since=start)
    assert fleet[0].truth.mode == "GUIDED"


async def test_pause_freezes_the_whole_fleet_and_resume_continues(sim_fleet, gcs_link):
    """fleet.pause(): vehicle time, position and heartbeats stop; resume(): flight continues."""
    import time

    fleet = await sim_fleet(count=1, speedup=10.0)
    link = await gcs_link(fleet[0].url)
    await takeoff(link, fleet, 10)
    ta, tb = offset(*HOME, 100, 0)
    assert await link.command_int(192, 6, -1, 1, 0, float("nan"), int(ta * 1e7), int(tb * 1e7), 10) == 0
    await wait_until(lambda: fleet[0].truth.groundspeed_m_s > 3, 5, "moving")
    fleet.pause()
    await asyncio.sleep(0.05)  # the tick in flight catches up to the frozen time
    before = fleet[0].truth
    start = link.mark()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.3:  # 3 vehicle seconds if it were running
        await asyncio.sleep(0.02)
    after = fleet[0].truth
    assert (after.lat, after.lon, after.time_s) == (before.lat, before.lon, before.time_s)
    assert not link.messages("HEARTBEAT", start)
    fleet.resume()
    await wait_until(lambda: distance_m(fleet[0].truth.lat, fleet[0].truth.lon, ta, tb) < 2, 10, "arrive")
