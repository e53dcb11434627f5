"""A GCS connects to a simulated ArduCopter: heartbeats, start-up, streams, parameters."""
import asyncio

import pytest

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from sim import SimError
from sim.vehicles import SimulatedFleet
from tests.sim.conftest import wait_vehicle_seconds


async def test_heartbeat_identifies_an_arducopter_quad_per_vehicle(sim_fleet, gcs_link):
    """Each vehicle answers on base+10*i as sysid i+1 with a quadrotor ArduPilot HEARTBEAT."""
    fleet = await sim_fleet(count=2)
    for i, v in enumerate(fleet):
        assert v.url.endswith(str(fleet.base_port + 10 * i))
        link = await gcs_link(v.url)
        hb = await link.wait_heartbeat(timeout=3)
        assert hb.get_srcSystem() == i + 1 == v.sysid
        assert (hb.type, hb.autopilot, hb.custom_mode) == (2, 3, 0)
        assert hb.base_mode in (81, 89)


async def test_startup_texts_arrive_in_order_and_fast_start_is_armable_within_a_second(sim_fleet, gcs_link):
    """The recorded boot sequence of texts; with fast_start the EKF uses GPS < 1 s vehicle time."""
    fleet = await sim_fleet(count=1, speedup=1.0)
    link = await gcs_link(fleet[0].url)
    await link.wait_text("EKF3 IMU0 is using GPS", timeout=2)
    texts = link.texts()
    order = ["Calibrating barometer", "ArduPilot Ready", "EKF3 IMU0 initialised", "GPS 1: detected u-blox",
             "EKF3 IMU0 origin set", "Field Elevation Set: 10m", "EKF3 IMU0 is using GPS"]
    assert [t for t in texts if t in order] == order
    assert fleet[0].position_ok and fleet[0].now < 1.5
    home = link.messages("HOME_POSITION")
    assert home and home[0].latitude == 320000000 and home[0].altitude == 10000


async def test_only_heartbeats_until_streams_are_requested_then_all_at_the_asked_rate(sim_fleet, gcs_link):
    """Nothing streams unasked; REQUEST_DATA_STREAM(ALL, 4 Hz) gives the telemetry set at ~4 Hz."""
    fleet = await sim_fleet(count=1, speedup=4.0)
    link = await gcs_link(fleet[0].url)
    await asyncio.sleep(0.3)
    assert not link.messages("GLOBAL_POSITION_INT")
    start = link.mark()
    link.mav.request_data_stream_send(1, 1, 0, 4, 1)
    await wait_vehicle_seconds(fleet, 4.0)
    counts = {}
    for _, m in link.log[start:]:
        counts[m.get_type()] = counts.get(m.get_type(), 0) + 1
    for name in ("GLOBAL_POSITION_INT", "ATTITUDE", "VFR_HUD", "SYS_STATUS", "BATTERY_STATUS", "GPS_RAW_INT",
                 "MISSION_CURRENT", "EKF_STATUS_REPORT", "SYSTEM_TIME"):
        assert 12 <= counts.get(name, 0) <= 20, (name, counts.get(name))
    assert len([k for k in counts if k not in ("HEARTBEAT", "STATUSTEXT", "PARAM_VALUE")]) >= 20


async def test_message_interval_and_request_message_are_acked_and_served(sim_fleet, gcs_link):
    """SET_MESSAGE_INTERVAL sets one stream's rate; REQUEST_MESSAGE sends the message, then ACK 0."""
    fleet = await sim_fleet(count=1, speedup=2.0)
    link = await gcs_link(fleet[0].url)
    assert await link.command(511, 33, 100_000) == 0  # GLOBAL_POSITION_INT at 10 Hz
    start = link.mark()
    await wait_vehicle_seconds(fleet, 2.0)
    assert 15 <= len(link.messages("GLOBAL_POSITION_INT", start)) <= 25
    start = link.mark()
    assert await link.command(512, 148) == 0
    version = link.messages("AUTOPILOT_VERSION", start)
    assert version and version[0].flight_sw_version == 67633152
    assert await link.command(511, 33, -1) == 0
    await wait_vehicle_seconds(fleet, 0.4)
    start = link.mark()
    await wait_vehicle_seconds(fleet, 1.0)
    assert not link.messages("GLOBAL_POSITION_INT", start)


async def test_params_read_set_and_unknown_names_under_4_7_names(sim_fleet, gcs_link):
    """4.7+ names read and set (echoed PARAM_VALUE); an old or unknown name gives PARAM_ERROR."""
    fleet = await sim_fleet(count=1)
    link = await gcs_link(fleet[0].url)
    start = link.mark()
    link.mav.param_request_read_send(1, 1, b"FS_GCS_TIMEOUT", -1)
    pv = await link.wait_for("PARAM_VALUE", lambda m: m.param_id == "FS_GCS_TIMEOUT", 2, start)
    assert pv.param_value == 5.0 and pv.param_count == 1368
    for name in (b"WPNAV_SPEED", b"NO_SUCH_PARAM"):
        start = link.mark()
        link.mav.param_request_read_send(1, 1, name, -1)
        err = await link.wait_for("PARAM_ERROR", None, 2, start)
        assert err.param_id == name.decode() and err.error == 1
        assert not link.messages("PARAM_VALUE", start)
    start = link.mark()
    link.mav.param_set_send(1, 1, b"WP_SPD", 7.5, 9)
    pv = await link.wait_for("PARAM_VALUE", lambda m: m.param_id == "WP_SPD", 2, start)
    assert pv.param_value == 7.5 and fleet[0].params.get("WP_SPD") == 7.5
    start = link.mark()
    link.mav.param_set_send(1, 1, b"NO_SUCH_PARAM", 1, 9)
    err = await link.wait_for("PARAM_ERROR", None, 2, start)
    assert err.param_id == "NO_SUCH_PARAM"


async def test_params_under_4_5_names_use_old_units(sim_fleet, gcs_link):
    """With param_style 4.5, WPNAV_SPEED is cm/s, RTL_ALT cm, SYSID_THISMAV the sysid; 4.7 names are unknown."""
    fleet = await sim_fleet(count=2, param_style="4.5")
    link = await gcs_link(fleet[1].url)
    link.target = 2
    values = {}
    for name in (b"WPNAV_SPEED", b"RTL_ALT", b"SYSID_THISMAV", b"CIRCLE_RADIUS"):
        start = link.mark()
        link.mav.param_request_read_send(2, 1, name, -1)
        values[name.decode()] = (await link.wait_for("PARAM_VALUE", None, 2, start)).param_value
    assert values == {"WPNAV_SPEED": 1000.0, "RTL_ALT": 1500.0, "SYSID_THISMAV": 2.0, "CIRCLE_RADIUS": 1000.0}
    start = link.mark()
    link.mav.param_set_send(2, 1, b"WPNAV_SPEED", 800, 9)
    await link.wait_for("PARAM_VALUE", lambda m: m.param_id == "WPNAV_SPEED", 2, start)
    assert fleet[1].params.get("WP_SPD") == 8.0
    start = link.mark()
    link.mav.param_request_read_send(2, 1, b"WP_SPD", -1)
    assert (await link.wait_for("PARAM_ERROR", None, 2, start)).param_id == "WP_SPD"


async def test_param_list_streams_every_parameter_with_indices(sim_fleet, gcs_link):
    """PARAM_REQUEST_LIST: the banner texts, then 1368 PARAM_VALUEs indexed 0..1367."""
    fleet = await sim_fleet(count=1)
    link = await gcs_link(fleet[0].url)
    start = link.mark()
    link.mav.param_request_list_send(1, 1)
    await link.wait_for("PARAM_VALUE", lambda m: m.param_index == 1367, 5, start)
    got = [m for m in link.messages("PARAM_VALUE", start) if m.param_index != 65535]
    assert sorted(m.param_index for m in got) == list(range(1368))
    assert "Frame: QUAD/PLUS" in link.texts(start)


async def test_several_gcs_links_share_one_vehicle(sim_fleet, gcs_link):
    """Two GCS on one port both get heartbeats; a parameter change by one is shown to the other."""
    fleet = await sim_fleet(count=1)
    a = await gcs_link(fleet[0].url)
    b = await gcs_link(fleet[0].url)
    await a.wait_heartbeat(timeout=3)
    await b.wait_heartbeat(timeout=3)
    start = b.mark()
    a.mav.param_set_send(1, 1, b"FS_GCS_ENABLE", 1, 9)
    pv = await b.wait_for("PARAM_VALUE", lambda m: m.param_id == "FS_GCS_ENABLE", 2, start)
    assert pv.param_value == 1.0


async def test_udp_gcs_endpoint_receives_heartbeats_and_can_command(sim_fleet):
    """With udp_gcs the vehicle sends to HOST:PORT (+10 per vehicle) and obeys what comes back."""
    from tests.fixtures.ports import free_port

    loop = asyncio.get_running_loop()
    got: asyncio.Queue = asyncio.Queue()
    parser = mavlink.MAVLink(None)

    class Proto(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            for m in parser.parse_buffer(data) or []:
                got.put_nowait((m, addr))

    port = free_port()
    transport, _ = await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", port))
    try:
        fleet = await sim_fleet(count=1, udp_gcs=f"127.0.0.1:{port}")
        m, addr = await asyncio.wait_for(got.get(), 3)
        while m.get_type() != "HEARTBEAT":
            m, addr = await asyncio.wait_for(got.get(), 3)
        out = mavlink.MAVLink(None, srcSystem=255, srcComponent=190)
        transport.sendto(out.command_long_encode(1, 1, 176, 0, 1, 4, 0, 0, 0, 0, 0).pack(out), addr)
        while True:
            m, _ = await asyncio.wait_for(got.get(), 3)
            if m.get_type() == "COMMAND_ACK":
                break
        assert m.result == 0 and fleet[0].truth.mode == "GUIDED"
    finally:
        transport.close()


async def test_bad_fleet_arguments_are_named():
    """Bad input is refused with a SimError naming the problem."""
    with pytest.raises(SimError, match="count"):
        SimulatedFleet(count=0)
    with pytest.raises(SimError, match="param_style"):
        SimulatedFleet(count=1, param_style="4.2")
    with pytest.raises(SimError, match="speedup"):
        SimulatedFleet(count=1, speedup=0)
    with pytest.raises(SimError, match="HOST:PORT"):
        SimulatedFleet(count=1, udp_gcs="nope")


async def test_port_in_use_is_a_clear_error(sim_fleet):
    """A second fleet on ports already taken fails with SimError naming the port."""
    fleet = await sim_fleet(count=1)
    with pytest.raises(SimError, match=str(fleet.base_port)):
        async with SimulatedFleet(count=1, base_port=fleet.base_port):
            pass
