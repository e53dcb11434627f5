"""Failsafes as ArduCopter runs them: GCS heartbeat loss, low battery, fence breach."""
from common.geo import offset
from tests.sim.conftest import takeoff, wait_until
from tests.sim.test_mission_protocol import HOME


async def _set_param(link, name: bytes, value: float) -> None:
    start = link.mark()
    link.mav.param_set_send(1, 1, name, value, 9)
    await link.wait_for("PARAM_VALUE", lambda m: m.param_id == name.decode(), 2, start)


async def test_gcs_heartbeat_loss_triggers_rtl_and_clears_when_heartbeats_return(sim_fleet, gcs_link):
    """FS_GCS_ENABLE 1: FS_GCS_TIMEOUT (5 s) without GCS heartbeats -> RTL + "GCS Failsafe"; back -> cleared."""
    fleet = await sim_fleet(count=1, speedup=10.0)
    link = await gcs_link(fleet[0].url)
    await takeoff(link, fleet, 10)
    await _set_param(link, b"FS_GCS_ENABLE", 1)
    start = link.mark()
    link.heartbeats_on = False
    hb = await link.wait_heartbeat(lambda m: m.custom_mode == 6, timeout=2)
    assert 5.0 <= fleet[0].now - fleet[0].last_gcs_hb_s <= 6.5  # from the last heartbeat it heard
    assert hb.system_status == 5  # CRITICAL while in failsafe
    await link.wait_text("GCS Failsafe", since=start, timeout=1)
    link.heartbeats_on = True
    await link.wait_text("GCS Failsafe Cleared", timeout=2)
    assert fleet[0].truth.mode == "RTL"


async def test_gcs_failsafe_is_off_by_default(sim_fleet, gcs_link):
    """With the default FS_GCS_ENABLE 0 a silent GCS changes nothing."""
    fleet = await sim_fleet(count=1, speedup=10.0)
    link = await gcs_link(fleet[0].url)
    await takeoff(link, fleet, 5)
    link.heartbeats_on = False
    t0 = fleet[0].now
    await wait_until(lambda: fleet[0].now - t0 > 8, 3, "8 s of silence")
    assert fleet[0].truth.mode == "GUIDED"


async def test_low_battery_rtl_with_the_recorded_texts(sim_fleet, gcs_link):
    """BATT_FS_LOW_ACT 2 and a pack under BATT_LOW_VOLT for BATT_LOW_TIMER -> RTL, "Battery Failsafe"."""
    fleet = await sim_fleet(count=1, speedup=10.0)
    link = await gcs_link(fleet[0].url)
    await takeoff(link, fleet, 10)
    await _set_param(link, b"BATT_FS_LOW_ACT", 2)
    start = link.mark()
    t0 = fleet[0].now
    fleet[0].faults.battery_fault(10.2)
    await link.wait_heartbeat(lambda m: m.custom_mode == 6, timeout=3)
    assert 9.5 <= fleet[0].now - t0 <= 11.5
    low = await link.wait_text("Battery 1 is low 10.20V used", since=start, timeout=1)
    assert low.endswith("mAh")
    await link.wait_text("Battery Failsafe", since=start, timeout=1)


async def test_sim_batt_voltage_param_is_the_battery_fault_over_mavlink(sim_fleet, gcs_link):
    """Setting SIM_BATT_VOLTAGE (as the recorded session did) drives SYS_STATUS voltage."""
    fleet = await sim_fleet(count=1)
    link = await gcs_link(fleet[0].url, streams_hz=4)
    await _set_param(link, b"SIM_BATT_VOLTAGE", 10.2)
    start = link.mark()
    st = await link.wait_for("SYS_STATUS", None, 2, start)
    assert st.voltage_battery == 10200


async def test_polygon_inclusion_fence_breach_brings_the_vehicle_back(sim_fleet, gcs_link):
    """Outside an enabled inclusion polygon: "Fence Breached" and FENCE_ACTION 1 -> RTL."""
    fleet = await sim_fleet(count=1, speedup=10.0)
    link = await gcs_link(fleet[0].url, streams_hz=2)
    await takeoff(link, fleet, 10)
    # a fence that does not contain where the vehicle is (50 m north of it)
    box = [offset(*HOME, dn, de) for dn, de in [(30, -40), (120, -40), (120, 40), (30, 40)]]
    assert await link.upload([{"cmd": 5001, "p": [4, 0, 0, 0], "lat": a, "lon": b, "frame": 0} for a, b in box],
                             mission_type=1) == 0
    start = link.mark()
    assert await link.command(207, 1) == 0
    await link.wait_heartbeat(lambda m: m.custom_mode == 6, timeout=2)
    await link.wait_text("Fence Breached", since=start, timeout=1)
    status = await link.wait_for("FENCE_STATUS", None, 2)
    assert status.breach_status == 1 and status.breach_count >= 1


async def test_exclusion_zone_breach_and_arming_inside_one_is_refused(sim_fleet, gcs_link):
    """An exclusion polygon around home: arming is refused with the breach text; flying in -> RTL."""
    fleet = await sim_fleet(count=1, speedup=10.0)
    link = await gcs_link(fleet[0].url)
    await fleet.wait_armable(5)
    zone = [offset(*HOME, dn, de) for dn, de in [(-20, -20), (20, -20), (20, 20), (-20, 20)]]
    assert await link.upload([{"cmd": 5002, "p": [4, 0, 0, 0], "lat": a, "lon": b, "frame": 0} for a, b in zone],
                             mission_type=1) == 0
    assert await link.command(207, 1) == 0
    assert await link.set_mode(4) == 0
    start = link.mark()
    assert await link.command(400, 1) == 4
    await link.wait_text("Arm: Vehicle breaching Polygon fence", since=start)
    assert await link.command(207, 0) == 0
    await takeoff(link, fleet, 10)
    assert await link.command(207, 1) == 0
    await link.wait_heartbeat(lambda m: m.custom_mode == 6, timeout=2)


async def test_low_battery_by_remaining_capacity_lands_with_batt_fs_low_act_1(sim_fleet, gcs_link):
    """BATT_LOW_MAH 600 and BATT_FS_LOW_ACT 1: under 600 mAh left -> LAND and "Battery Failsafe"."""
    fleet = await sim_fleet(count=1, speedup=10.0)
    link = await gcs_link(fleet[0].url)
    await takeoff(link, fleet, 10)
    await _set_param(link, b"BATT_LOW_MAH", 600)
    await _set_param(link, b"BATT_FS_LOW_ACT", 1)
    start = link.mark()
    fleet[0].faults.drain_battery_to(15)  # 495 mAh left of 3300
    await link.wait_heartbeat(lambda m: m.custom_mode == 9, timeout=2)
    await link.wait_text("Battery Failsafe", since=start, timeout=1)


async def test_altitude_and_home_circle_fences_refuse_targets_and_bring_it_back(sim_fleet, gcs_link):
    """FENCE_ALT_MAX refuses a higher reposition; lowering it below the vehicle breaches -> RTL."""
    fleet = await sim_fleet(count=1, speedup=10.0)
    link = await gcs_link(fleet[0].url)
    await takeoff(link, fleet, 15)
    await _set_param(link, b"FENCE_ALT_MAX", 20)
    await _set_param(link, b"FENCE_ENABLE", 1)
    ta, tb = offset(*HOME, 30, 0)
    assert await link.command_int(192, 6, -1, 1, 0, float("nan"), int(ta * 1e7), int(tb * 1e7), 25) == 4
    fa, fb = offset(*HOME, 200, 0)  # outside FENCE_RADIUS (150 m) around home
    assert await link.command_int(192, 6, -1, 1, 0, float("nan"), int(fa * 1e7), int(fb * 1e7), 15) == 4
    start = link.mark()
    await _set_param(link, b"FENCE_ALT_MAX", 12)
    await link.wait_heartbeat(lambda m: m.custom_mode == 6, timeout=2)
    await link.wait_text("Fence Breached", since=start, timeout=1)
