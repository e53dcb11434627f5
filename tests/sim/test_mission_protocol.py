"""Mission, fence and rally transfer as ArduCopter does it (requests, ACKs, timeout, home item)."""
import asyncio

from common.geo import offset

HOME = (32.0, 119.58)


def patrol_mission(alt_m: float = 30.0) -> list[dict]:
    lat0, lon0 = HOME
    wps = [offset(lat0, lon0, dn, de) for dn, de in [(60, 0), (60, 60), (0, 60)]]
    items = [{"cmd": 16, "lat": lat0, "lon": lon0, "alt": 0, "frame": 0}, {"cmd": 22, "alt": alt_m}]
    items += [{"cmd": 16, "lat": a, "lon": b, "alt": alt_m} for a, b in wps]
    items += [{"cmd": 178, "p": [1, 6, -1, 0]}, {"cmd": 20}]
    return items


async def test_upload_asks_with_mission_request_one_at_a_time_and_acks(sim_fleet, gcs_link):
    """MISSION_COUNT -> MISSION_REQUEST (not _INT) seq 0..n-1 -> ACK 0 + "Flight plan received"."""
    fleet = await sim_fleet(count=1)
    link = await gcs_link(fleet[0].url)
    start = link.mark()
    assert await link.upload(patrol_mission()) == 0
    requests = link.messages("MISSION_REQUEST", start)
    assert [r.seq for r in requests] == list(range(7))
    assert not link.messages("MISSION_REQUEST_INT", start)
    await link.wait_text("Flight plan received", since=start)


async def test_download_returns_home_as_item_zero_and_frames_as_stored(sim_fleet, gcs_link):
    """Item 0 comes back as home (frame 0, MSL alt); relative items frame 3, DO items frame 0."""
    fleet = await sim_fleet(count=1)
    link = await gcs_link(fleet[0].url)
    await fleet.wait_armable(5)
    items = patrol_mission()
    assert await link.upload(items) == 0
    got = await link.download()
    assert len(got) == len(items)
    assert (got[0].frame, got[0].x, got[0].y, got[0].z) == (0, 320000000, 1195800000, 10.0)
    assert [g.command for g in got] == [i["cmd"] for i in items]
    assert [g.frame for g in got[1:]] == [3, 3, 3, 3, 0, 0]
    assert got[2].x == int(round(items[2]["lat"] * 1e7))


async def test_unsupported_command_is_refused_at_that_item(sim_fleet, gcs_link):
    """An unknown command id ends the upload with MISSION_ACK 3 right after that item."""
    fleet = await sim_fleet(count=1)
    link = await gcs_link(fleet[0].url)
    start = link.mark()
    assert await link.upload([patrol_mission()[0], {"cmd": 31999, "alt": 30}]) == 3
    assert [r.seq for r in link.messages("MISSION_REQUEST", start)] == [0, 1]


async def test_silent_gcs_gets_re_requests_then_timeout_ack_15(sim_fleet, gcs_link):
    """The vehicle re-asks for the missing item every second, gives up after 8 s (vehicle time),
    and, like ArduPilot (which truncates the stored list to the announced count at MISSION_COUNT
    and never rolls back), keeps the old mission's first 3 items."""
    fleet = await sim_fleet(count=1, speedup=10.0)
    link = await gcs_link(fleet[0].url)
    assert await link.upload(patrol_mission()) == 0
    start = link.mark()
    link.mav.mission_count_send(1, 1, 3, 0)
    await link.wait_for("MISSION_REQUEST", lambda m: m.seq == 0, 2, start)
    ack = await link.wait_for("MISSION_ACK", None, 3, start)
    assert ack.type == 15
    assert 7 <= len(link.messages("MISSION_REQUEST", start)) <= 9
    await link.wait_text("Mission upload timeout", timeout=1, since=start)
    assert [i.command for i in fleet[0].mission.lists[0]] == [i["cmd"] for i in patrol_mission()[:3]]


async def test_mission_item_float_form_is_accepted(sim_fleet, gcs_link):
    """An old GCS answering with MISSION_ITEM (float lat/lon) uploads the same mission."""
    fleet = await sim_fleet(count=1)
    link = await gcs_link(fleet[0].url)
    await fleet.wait_armable(5)
    start = link.mark()
    link.mav.mission_count_send(1, 1, 2, 0)
    for seq, (cmd, lat, lon, alt) in enumerate([(16, 32.0, 119.58, 0), (16, 32.001, 119.581, 25)]):
        await link.wait_for("MISSION_REQUEST", lambda m, s=seq: m.seq == s, 2, start)
        link.mav.mission_item_send(1, 1, seq, 3, cmd, 0, 1, 0, 0, 0, 0, lat, lon, alt, 0)
    assert (await link.wait_for("MISSION_ACK", None, 2, start)).type == 0
    stored = fleet[0].mission.lists[0][1]
    # float32 lat/lon carry ~0.2 m of rounding: that is the old message's limit, not ours
    assert abs(stored.x - 320010000) < 50 and stored.z == 25


async def test_fence_and_rally_lists_and_clear_all(sim_fleet, gcs_link):
    """Fence upload says "Fence Indexed OK"; rally and fence download as stored; CLEAR_ALL empties."""
    fleet = await sim_fleet(count=1)
    link = await gcs_link(fleet[0].url)
    box = [offset(*HOME, dn, de) for dn, de in [(-200, -200), (200, -200), (200, 200), (-200, 200)]]
    start = link.mark()
    fence = [{"cmd": 5001, "p": [4, 0, 0, 0], "lat": a, "lon": b, "frame": 0} for a, b in box]
    assert await link.upload(fence, mission_type=1) == 0
    await link.wait_text("Fence Indexed OK", since=start)
    assert await link.upload([{"cmd": 5100, "lat": box[0][0], "lon": box[0][1], "alt": 25}], mission_type=2) == 0
    fence_back = await link.download(1)
    assert [(f.command, f.param1, f.autocontinue) for f in fence_back] == [(5001, 4.0, 0)] * 4
    assert (await link.download(2))[0].frame == 3
    start = link.mark()
    link.mav.mission_clear_all_send(1, 1, 1)
    assert (await link.wait_for("MISSION_ACK", None, 2, start)).type == 0
    assert fleet[0].mission.lists[1] == []


async def test_second_gcs_cannot_interleave_an_upload(sim_fleet, gcs_link):
    """While one GCS uploads, another's MISSION_COUNT is denied (ACK 14); the first completes."""
    fleet = await sim_fleet(count=1)
    a = await gcs_link(fleet[0].url)
    b = await gcs_link(fleet[0].url)
    await fleet.wait_armable(5)
    start = a.mark()
    a.mav.mission_count_send(1, 1, 2, 0)
    await a.wait_for("MISSION_REQUEST", None, 2, start)
    start_b = b.mark()
    b.mav.mission_count_send(1, 1, 5, 0)
    assert (await b.wait_for("MISSION_ACK", None, 2, start_b)).type == 14
    await asyncio.sleep(0)
    assert fleet[0].mission.upload is not None
