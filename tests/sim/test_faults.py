"""Faults a trainer injects: packet loss, latency, link cut, wind, GPS glitch, battery."""
import asyncio
import time

import pytest

from common.geo import distance_m
from sim import SimError
from tests.sim.conftest import takeoff, wait_until, wait_vehicle_seconds
from tests.sim.test_mission_protocol import HOME


async def test_packet_loss_drops_about_that_share_of_telemetry(sim_fleet, gcs_link):
    """50 % loss: roughly half of a 10 Hz stream arrives; 0 % again: all of it."""
    fleet = await sim_fleet(count=1, speedup=4.0, seed=3)
    link = await gcs_link(fleet[0].url)
    assert await link.command(511, 33, 100_000) == 0
    fleet[0].faults.set_packet_loss(50)
    start = link.mark()
    await wait_vehicle_seconds(fleet, 6.0)  # 60 messages sent
    n = len(link.messages("GLOBAL_POSITION_INT", start))
    assert 15 <= n <= 45
    fleet[0].faults.set_packet_loss(0)
    await wait_vehicle_seconds(fleet, 0.2)
    start = link.mark()
    await wait_vehicle_seconds(fleet, 4.0)
    assert len(link.messages("GLOBAL_POSITION_INT", start)) >= 36


async def test_latency_delays_the_answers(sim_fleet, gcs_link):
    """200 ms added latency each way: a command's ACK takes at least 400 ms wall."""
    fleet = await sim_fleet(count=1)
    link = await gcs_link(fleet[0].url)
    await link.wait_heartbeat(timeout=2)
    fleet[0].faults.set_latency(200)
    t0 = time.monotonic()
    assert await link.set_mode(4) == 0
    assert time.monotonic() - t0 >= 0.39


async def test_cut_link_silences_both_ways_then_recovers_and_can_trip_gcs_failsafe(sim_fleet, gcs_link):
    """A 7 s cut: no messages arrive, the vehicle hears no heartbeat (GCS failsafe -> RTL), then back."""
    fleet = await sim_fleet(count=1, speedup=10.0)
    link = await gcs_link(fleet[0].url)
    await takeoff(link, fleet, 10)
    start_p = link.mark()
    link.mav.param_set_send(1, 1, b"FS_GCS_ENABLE", 1, 9)
    await link.wait_for("PARAM_VALUE", None, 2, start_p)
    fleet[0].faults.cut_link(7)
    await wait_vehicle_seconds(fleet, 0.3)  # what was already on the wire
    start = link.mark()
    await wait_until(lambda: fleet[0].truth.mode == "RTL", 2, "GCS failsafe during the cut")
    assert fleet[0].faults.link_cut and link.mark() == start  # still cut: nothing arrived
    hb = await link.wait_heartbeat(timeout=2)
    assert hb.custom_mode == 6 and not fleet[0].faults.link_cut


async def test_wind_shows_in_telemetry_and_drifts_nothing_while_holding(sim_fleet, gcs_link):
    """8 m/s wind from the west: WIND reports it, VFR_HUD airspeed ~8 m/s while hovering in place."""
    fleet = await sim_fleet(count=1, speedup=10.0)
    link = await gcs_link(fleet[0].url, streams_hz=4)
    await takeoff(link, fleet, 10)
    fleet[0].faults.set_wind(8.0, 270.0)
    wind = await link.wait_for("WIND", lambda m: m.speed > 0, 2)  # skip any packed before the change
    assert wind.speed == pytest.approx(8.0) and wind.direction == pytest.approx(-90.0)
    hud = await link.wait_for("VFR_HUD", None, 2)
    assert hud.airspeed == pytest.approx(8.0, abs=0.5)
    assert distance_m(fleet[0].truth.lat, fleet[0].truth.lon, *HOME) < 1.0


async def test_gps_glitch_moves_the_reported_position_and_the_vehicle_really_drifts(sim_fleet, gcs_link):
    """A 30 m glitch: GLOBAL_POSITION_INT jumps, the vehicle "corrects" the other way, then it clears."""
    fleet = await sim_fleet(count=1, speedup=10.0)
    link = await gcs_link(fleet[0].url, streams_hz=4)
    await takeoff(link, fleet, 10)
    start = link.mark()
    fleet[0].faults.gps_glitch(4.0, 30.0, bearing_deg=0.0)
    await link.wait_text("GPS Glitch or Compass error", since=start)
    await wait_until(lambda: distance_m(fleet[0].truth.lat, fleet[0].truth.lon, *HOME) > 10, 3, "drift")
    await link.wait_text("Glitch cleared", timeout=2)
    await wait_until(lambda: distance_m(fleet[0].truth.lat, fleet[0].truth.lon, *HOME) < 1, 5, "return")


async def test_drained_battery_is_reported_and_bad_fault_values_are_refused(sim_fleet, gcs_link):
    """drain_battery_to(20) -> SYS_STATUS battery_remaining 20 and a lower voltage; bad values raise."""
    fleet = await sim_fleet(count=1)
    link = await gcs_link(fleet[0].url, streams_hz=4)
    fleet[0].faults.drain_battery_to(20)
    st = await link.wait_for("SYS_STATUS", lambda m: m.battery_remaining < 100, 2)  # not one packed before
    assert st.battery_remaining == 20 and st.voltage_battery < 12600
    assert fleet[0].truth.battery_remaining_pct == 20
    for bad in (lambda: fleet[0].faults.set_packet_loss(120), lambda: fleet[0].faults.drain_battery_to(-1),
                lambda: fleet[0].faults.set_wind(-3, 0), lambda: fleet[0].faults.cut_link(-1)):
        with pytest.raises(SimError):
            bad()


def test_typed_fault_commands_apply_to_the_named_vehicles_and_refuse_bad_input():
    """`patrol sim vehicles` stdin commands: loss/wind/battery hit the right vehicles; errors are named."""
    from sim.cli import apply_fault_command
    from sim.vehicles import SimulatedFleet

    fleet = SimulatedFleet(count=3, base_port=1)  # never started: faults need no sockets
    assert apply_fault_command(fleet, "loss 1 25").startswith("ok")
    assert [v.faults.packet_loss_pct for v in fleet] == [0, 25, 0]
    assert apply_fault_command(fleet, "wind all 6 270").startswith("ok")
    assert all(v.params.get("SIM_WIND_SPD") == 6 for v in fleet)
    assert apply_fault_command(fleet, "battery 2 40").startswith("ok")
    assert fleet[2].truth.battery_remaining_pct == 40
    assert "0..2" in apply_fault_command(fleet, "loss 7 10")
    assert apply_fault_command(fleet, "loss 0 150").startswith("refused")
    assert "needs VEHICLE" in apply_fault_command(fleet, "wind 0 5")
    assert "unknown command" in apply_fault_command(fleet, "explode 0")
