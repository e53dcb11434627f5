"""Object avoidance (OA_TYPE 2, Dijkstra's) round fence exclusion zones, as ArduCopter flies it."""
import asyncio

import pytest
from shapely.geometry import Point, Polygon

from common.geo import offset
from tests.sim.conftest import takeoff, wait_until
from tests.sim.test_mission_protocol import HOME

ZONE_NE = [(60, -25), (100, -25), (100, 25), (60, 25)]  # 40 x 50 m no-fly zone north of home


async def _set_param(link, name: str, value: float):
    start = link.mark()
    link.mav.param_set_send(1, 1, name.encode(), value, 9)
    return await link.wait_for(("PARAM_VALUE", "PARAM_ERROR"), lambda m: m.param_id == name, 2, start)


async def _read_param(link, name: str):
    start = link.mark()
    link.mav.param_request_read_send(1, 1, name.encode(), -1)
    return await link.wait_for(("PARAM_VALUE", "PARAM_ERROR"), lambda m: m.param_id == name, 2, start)


async def _upload_no_fly_fence(link) -> None:
    """An inclusion box 400 m round home and the exclusion zone; polygon + altitude fence on."""
    box = [offset(*HOME, n, e) for n, e in [(-200, -200), (200, -200), (200, 200), (-200, 200)]]
    zone = [offset(*HOME, n, e) for n, e in ZONE_NE]
    items = [{"cmd": 5001, "p": [4, 0, 0, 0], "lat": a, "lon": b, "frame": 0} for a, b in box]
    items += [{"cmd": 5002, "p": [4, 0, 0, 0], "lat": a, "lon": b, "frame": 0} for a, b in zone]
    assert await link.upload(items, mission_type=1) == 0
    await _set_param(link, "FENCE_TYPE", 5)
    await _set_param(link, "FENCE_ENABLE", 1)


async def _track_while(fleet, until, timeout: float) -> list[tuple[float, float]]:
    """Sample the vehicle's true position (east, north of home) until `until()` holds."""
    sv = fleet[0]
    track = []
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not until():
        if loop.time() > end:
            raise AssertionError(f"vehicle did not get there in {timeout} s (at {track[-1] if track else None})")
        track.append((sv.kin.east_m, sv.kin.north_m))
        await asyncio.sleep(0.005)
    return track


def _zone() -> Polygon:
    return Polygon([(e, n) for n, e in ZONE_NE])


async def test_oa_parameters_appear_when_enabled_and_dijkstra_needs_a_reboot(sim_fleet, gcs_link):
    """OA_MARGIN_MAX is only listed once OA_TYPE is set; OA_TYPE 2 without a reboot refuses to arm
    with ArduPilot's text; MAV_CMD_PREFLIGHT_REBOOT_SHUTDOWN (refused while armed) fixes it."""
    fleet = await sim_fleet(count=1, speedup=10.0)
    link = await gcs_link(fleet[0].url)
    await fleet.wait_armable(5)
    count0 = fleet[0].params.count
    assert (await _read_param(link, "OA_MARGIN_MAX")).get_type() == "PARAM_ERROR"
    await _set_param(link, "OA_TYPE", 2)
    margin = await _read_param(link, "OA_MARGIN_MAX")
    assert margin.get_type() == "PARAM_VALUE" and margin.param_value == 5.0
    assert fleet[0].params.count > count0
    assert await link.set_mode(4) == 0
    start = link.mark()
    assert await link.command(400, 1) == 4
    await link.wait_text("Arm: Dijkstra OA requires reboot", since=start)
    await link.wait_text("PreArm: Dijkstra OA requires reboot", timeout=5, since=start)  # every 30 s
    assert await link.command(246, 1) == 0
    await link.wait_text("EKF3 IMU0 is using GPS", timeout=5, since=start)
    await takeoff(link, fleet, 5)
    assert await link.command(246, 1) == 4  # not in the air


@pytest.mark.parametrize("oa_type", [2, 0])
async def test_guided_target_beyond_a_no_fly_zone(sim_fleet, gcs_link, oa_type):
    """A GUIDED target on the far side of an exclusion zone: with OA_TYPE 2 the copter goes round it
    at least the margin away and arrives; with OA off it flies straight in: "Fence Breached"."""
    fleet = await sim_fleet(count=1, speedup=20.0, params={"OA_TYPE": oa_type, "OA_MARGIN_MAX": 8})
    sv = fleet[0]
    link = await gcs_link(sv.url)
    await fleet.wait_armable(5)
    await _upload_no_fly_fence(link)
    await takeoff(link, fleet, 20)
    start = link.mark()
    lat, lon = offset(*HOME, 160, 0)
    assert await link.command_int(192, 6, -1, 1, 0, 0, int(lat * 1e7), int(lon * 1e7), 20) == 0
    if oa_type:
        track = await _track_while(fleet, lambda: Point(sv.kin.east_m, sv.kin.north_m).distance(Point(0, 160)) < 2, 30)
        closest = min(_zone().distance(Point(p)) for p in track)
        assert closest >= 0.8 * 8, f"passed {closest:.1f} m from the zone (margin 8 m)"
        assert sv.fence_breach_count == 0 and "Fence Breached" not in link.texts(start)
    else:
        await link.wait_text("Fence Breached", timeout=10, since=start)
        assert _zone().contains(Point(sv.kin.east_m, sv.kin.north_m))


async def test_auto_leg_across_a_no_fly_zone_goes_round_it(sim_fleet, gcs_link):
    """An AUTO waypoint on the far side of the zone, OA_TYPE 2: the leg goes round it and the
    item is reached (MISSION_ITEM_REACHED) without a breach."""
    fleet = await sim_fleet(count=1, speedup=20.0, params={"OA_TYPE": 2})
    sv = fleet[0]
    link = await gcs_link(sv.url)
    await fleet.wait_armable(5)
    await _upload_no_fly_fence(link)
    far = offset(*HOME, 160, 0)
    mission = [{"cmd": 16, "lat": HOME[0], "lon": HOME[1], "frame": 0}, {"cmd": 22, "alt": 20, "frame": 3},
               {"cmd": 16, "lat": far[0], "lon": far[1], "alt": 20, "frame": 3}]
    assert await link.upload(mission) == 0
    await takeoff(link, fleet, 20)
    start = link.mark()
    assert await link.set_mode(3) == 0
    track = await _track_while(fleet, lambda: any(m.seq == 2 for m in link.messages("MISSION_ITEM_REACHED", start)), 30)
    assert min(_zone().distance(Point(p)) for p in track) >= 0.8 * 5
    assert Point(sv.kin.east_m, sv.kin.north_m).distance(Point(0, 160)) < 3
    assert sv.fence_breach_count == 0


async def test_walled_in_target_stops_the_vehicle_with_dijkstras_text(sim_fleet, gcs_link):
    """A zone across the whole inclusion box leaves no path: the copter stops and says so, and
    keeps trying (switching avoidance off sends it on, straight into the zone)."""
    fleet = await sim_fleet(count=1, speedup=20.0, params={"OA_TYPE": 2})
    sv = fleet[0]
    link = await gcs_link(sv.url)
    await fleet.wait_armable(5)
    box = [offset(*HOME, n, e) for n, e in [(-200, -200), (200, -200), (200, 200), (-200, 200)]]
    wall = [offset(*HOME, n, e) for n, e in [(60, -300), (100, -300), (100, 300), (60, 300)]]
    items = [{"cmd": 5001, "p": [4, 0, 0, 0], "lat": a, "lon": b, "frame": 0} for a, b in box]
    items += [{"cmd": 5002, "p": [4, 0, 0, 0], "lat": a, "lon": b, "frame": 0} for a, b in wall]
    assert await link.upload(items, mission_type=1) == 0
    await _set_param(link, "FENCE_TYPE", 5)
    await _set_param(link, "FENCE_ENABLE", 1)
    await takeoff(link, fleet, 20)
    start = link.mark()
    lat, lon = offset(*HOME, 160, 0)
    assert await link.command_int(192, 6, -1, 1, 0, 0, int(lat * 1e7), int(lon * 1e7), 20) == 0
    await link.wait_text("Dijkstra: could not find path", timeout=3, since=start)
    await asyncio.sleep(0.3)
    assert sv.kin.north_m < 10 and sv.fence_breach_count == 0
    await _set_param(link, "OA_TYPE", 0)  # avoidance off: it keeps trying, and now flies straight in
    await link.wait_text("Fence Breached", timeout=5, since=start)
