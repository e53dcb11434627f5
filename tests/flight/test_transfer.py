"""Mission transfer, parameters and command refusals against a peer whose packet loss we control
(tests/flight/fake_autopilot.py answers the way a real ArduCopter does, per ../shared/ardupilot/BEHAVIOUR.md)."""
from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from pathlib import Path

import pytest

from common.geo import offset
from common.values import FenceZone, Mission, MissionItem, MissionType, RallyPoint
from flight import Vehicle
from flight.config import FlightConfig
from flight.errors import (ArmingError, FlightError, FlightTimeout, MissionMismatch, MissionNotStorable,
                           MissionTransferError, ParamError)
from flight.events import EventKind
from flight.link import mav
from tests.flight.fake_autopilot import FakeAutopilot
from tests.flight.procedures import SPEEDUP, get_sortie
from tests.flight.procedures import connect as connect_sim
from tests.flight.test_sitl import SPEEDUP as SITL_SPEEDUP
from tests.flight.test_sitl import sitl_url  # noqa: F401  (fixture: the real SITL for the sitl-marked test)

HOME = (32.0, 119.58)


def get_patrol_items(count: int) -> list[MissionItem]:
    """Home, takeoff, then `count` waypoints on a lawnmower, then RTL (as the planner writes them)."""
    items = [MissionItem(16, *HOME, 0.0, frame=0), MissionItem(22, alt_m=30.0)]
    for i in range(count):
        lat, lon = offset(*HOME, 40.0 * (i // 10), 25.0 * (i % 10))
        items.append(MissionItem(16, lat, lon, 30.0 + (i % 3) * 0.5))
    items.append(MissionItem(178, param1=1, param2=6.5, param3=-1))
    items.append(MissionItem(20))
    return items


async def connect(ap: FakeAutopilot, **cfg) -> Vehicle:
    v = Vehicle(ap.url, drone_id="d1", config=FlightConfig(**cfg))
    await v.connect(timeout_s=10)
    return v


async def test_verified_upload_reads_back_every_item():
    """Upload a 60-waypoint sortie with fence and rally; each list is read back and matches."""
    async with FakeAutopilot() as ap:
        v = await connect(ap)
        try:
            fence = (FenceZone(True, tuple(offset(*HOME, n, e) for n, e in [(-400, -400), (400, -400), (400, 400)])),)
            mission = Mission(tuple(get_patrol_items(60)), fence=fence, rally=(RallyPoint(*offset(*HOME, -50, -50), 25),))
            await v.mission.upload_sortie(mission)
            got = await v.mission.download(MissionType.MISSION)
            assert len(got) == len(mission.items)
            assert got[5].lat == pytest.approx(mission.items[5].lat, abs=1e-7)
            assert len(ap.lists[MissionType.FENCE]) == 3 and len(ap.lists[MissionType.RALLY]) == 1
            assert ap.params["FENCE_ENABLE"] == 1
        finally:
            await v.close()


async def test_refused_item_names_the_vehicle_result():
    """A command the vehicle refuses is refused at its item with the vehicle's MISSION_ACK result."""
    async with FakeAutopilot() as ap:
        v = await connect(ap)
        try:
            bad = [MissionItem(16, *HOME, 0.0, frame=0), MissionItem(31999, alt_m=30)]
            with pytest.raises(MissionTransferError) as err:
                await v.mission.upload(bad)  # the raw upload: no check of ours in the way
            assert err.value.result == mav.MAV_MISSION_UNSUPPORTED and err.value.seq == 1
            assert "UNSUPPORTED at item 1" in str(err.value)
        finally:
            await v.close()


async def test_items_arducopter_would_refuse_or_change_are_named_and_nothing_is_sent():
    """NaN where ArduCopter refuses it, a negative integer param it would wrap, a command Copter
    does not support in a mission: each named with its item; not one item goes over the link."""
    async with FakeAutopilot() as ap:
        v = await connect(ap)
        try:
            bad = [MissionItem(16, *HOME, 0.0, frame=0), MissionItem(22, alt_m=30),
                   MissionItem(19, *offset(*HOME, 50, 0), 30, param1=10, param4=float("nan")),
                   MissionItem(178, param1=-1, param2=5),
                   MissionItem(113, param1=2, alt_m=40), MissionItem(21, *HOME, 0)]
            with pytest.raises(MissionNotStorable) as err:
                await v.mission.upload_verified(bad)
            text = str(err.value)
            assert "item 2 (command 19)" in text and "INVALID_PARAM4" in text
            assert "item 3 (command 178): param1 -1" in text and "255" in text
            assert "item 4 (command 113): ArduCopter does not support CONDITION_CHANGE_ALT" in text
            assert "item 1 " not in text and "item 5 " not in text
            assert ap.items_received == 0
        finally:
            await v.close()


async def test_verifies_what_arducopter_keeps_and_names_a_corrupted_read_back():
    """LAND comes back with param4 1, TAKEOFF/WAYPOINT without params 2-4, frames non-INT: that
    verifies. A read-back with a moved waypoint, a changed command, a lost item or a truncated
    list is refused, naming the item and field."""
    items = [MissionItem(16, *HOME, 0.0, frame=0), MissionItem(22, alt_m=30, frame=6, param4=float("nan")),
             MissionItem(16, *offset(*HOME, 60, 0), 30, frame=6, param2=2.0, param4=float("nan")),
             MissionItem(178, param1=1, param2=6.5, param3=-1), MissionItem(21, *offset(*HOME, 60, 0), 0.0)]
    moved = lambda mt, xs: xs[:2] + [replace(xs[2], x=xs[2].x + 90)] + xs[3:]  # noqa: E731  ~1 m north
    other_command = lambda mt, xs: xs[:4] + [replace(xs[4], command=20)]  # noqa: E731
    lost = lambda mt, xs: xs[:3] + xs[4:]  # noqa: E731
    truncated = lambda mt, xs: xs[:3]  # noqa: E731
    async with FakeAutopilot() as ap:
        v = await connect(ap, transfer={"transfer_attempts": 1})
        try:
            await v.mission.upload_verified(items)
            assert ap.lists[0][4].param4 == 1.0 and ap.lists[0][2].param2 == 0.0  # stored as ArduCopter does
            for corrupt, why in [(moved, "item 2 (command 16): lat sent"), (other_command, "item 4 (command 21): command"),
                                 (lost, "vehicle holds 4 items, 5 were sent"), (truncated, "holds 3 items")]:
                ap.corrupt_readback = corrupt
                with pytest.raises(MissionMismatch, match=re.escape(why)):
                    await v.mission.verify(items)
            ap.corrupt_readback = None
            await v.mission.verify(items)
        finally:
            await v.close()


async def test_params_by_either_generation_on_a_45_vehicle():
    """A 4.5 vehicle keeps WPNAV_SPEED in cm/s; asking for WP_SPD gives m/s, setting RTL_ALT_M writes cm."""
    async with FakeAutopilot(param_style="4.5") as ap:
        v = await connect(ap)
        try:
            assert v.params.style == "4.5"
            assert await v.params.get("WP_SPD") == pytest.approx(10.0)
            assert await v.params.get("WPNAV_SPEED") == pytest.approx(1000.0)
            await v.params.set("RTL_ALT_M", 30)
            assert ap.params["RTL_ALT"] == pytest.approx(3000)
            assert ap.params["FS_GCS_ENABLE"] == 1 and ap.params["BATT_FS_LOW_ACT"] == 2  # safety on connect
            with pytest.raises(ParamError, match="NO_SUCH_PARAM"):
                await v.params.get("NO_SUCH_PARAM")
        finally:
            await v.close()


async def test_params_on_a_47_vehicle():
    """A 4.7 vehicle answers RTL_ALT (cm, old name) from RTL_ALT_M (m)."""
    async with FakeAutopilot(param_style="4.7") as ap:
        v = await connect(ap)
        try:
            assert await v.params.get("RTL_ALT") == pytest.approx(1500)
            await v.params.set("WPNAV_SPEED", 750)
            assert ap.params["WP_SPD"] == pytest.approx(7.5)
        finally:
            await v.close()


async def test_refused_arm_carries_the_vehicle_reason():
    """A refused arm raises ArmingError with the vehicle's own STATUSTEXT."""
    async with FakeAutopilot(refuse_command=mav.MAV_CMD_COMPONENT_ARM_DISARM) as ap:
        v = await connect(ap)
        try:
            with pytest.raises(ArmingError) as err:
                await v.command_long(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1, error=ArmingError, what="arm")
            assert "Arm: Need Position Estimate" in err.value.reasons
            assert "FAILED" in str(err.value)
        finally:
            await v.close()


async def test_mode_change_confirmed_by_heartbeat():
    """DO_SET_MODE to GUIDED returns only when the HEARTBEAT says GUIDED; LOITER unattended is refused."""
    async with FakeAutopilot() as ap:
        v = await connect(ap)
        try:
            await v.action.set_mode("GUIDED")
            assert v.state.mode == "GUIDED" and ap.custom_mode == 4
        finally:
            await v.close()


async def test_signed_link_is_accepted_and_unsigned_is_not(tmp_path):
    """With a signing key both ends share, commands get through; without it the vehicle drops them."""
    key = bytes(range(32))
    (tmp_path / "key").write_bytes(key)
    async with FakeAutopilot(signing_key=key) as ap:
        v = Vehicle(ap.url, config=FlightConfig(link={"signing_key_file": tmp_path / "key"}))
        await v.connect(timeout_s=10)
        try:
            await v.action.set_mode("GUIDED")
            assert ap.custom_mode == 4 and ap.unsigned_rejected == 0
        finally:
            await v.close()
    async with FakeAutopilot(signing_key=key) as ap:
        v = Vehicle(ap.url, config=FlightConfig(link={"command_attempts": 2, "command_timeout_s": 0.2}))
        with pytest.raises(FlightError):
            await v.connect(timeout_s=10)  # the failsafe parameters cannot be set
        await v.close()
        assert ap.unsigned_rejected > 0 and ap.params["FS_GCS_ENABLE"] == 0


async def test_broken_tcp_link_is_reopened_and_reported():
    """The vehicle end drops the TCP connection: the controller reports the link lost, reopens it
    by itself and reports it regained, and commands work again."""
    async with FakeAutopilot() as ap:
        v = Vehicle(ap.url, drone_id="d1", config=FlightConfig(link={"heartbeat_timeout_s": 1.0,
                                                                     "reconnect_interval_s": 0.2}))
        await v.connect(timeout_s=10)
        try:
            events = v.events()
            ap.writer.close()
            kinds = []
            async with asyncio.timeout(10):
                async for ev in events:
                    kinds.append(ev.kind)
                    if ev.kind == EventKind.LINK_REGAINED:
                        break
            assert kinds.index(EventKind.LINK_LOST) < kinds.index(EventKind.LINK_REGAINED)
            assert v.link.reopen_count >= 1
            await v.action.set_mode("GUIDED")
            assert ap.custom_mode == 4
        finally:
            await v.close()


async def test_pose_stream_follows_telemetry_and_reports_silence():
    """poses() yields the vehicle's position as Pose values; when positions stop it raises
    FlightTimeout instead of hanging."""
    async with FakeAutopilot() as ap:
        v = await connect(ap)
        try:
            got = []
            async for pose in v.telemetry.poses(stale_after_s=2.0):
                got.append(pose)
                if len(got) == 3:
                    break
            assert got[0].lat == pytest.approx(32.0) and got[0].alt_msl_m == pytest.approx(10.1)
            assert got[-1].time_s > got[0].time_s and got[0].drone_id == "d1"
            for t in ap._tasks:
                t.cancel()  # the vehicle stops talking
            with pytest.raises(FlightTimeout, match="no position"):
                async for _ in v.telemetry.poses(stale_after_s=0.5):
                    pass
        finally:
            await v.close()


async def test_transfer_cut_half_way_leaves_the_last_verified_mission_not_a_mix(sim_fleet):
    """A radio dropout half-way through an upload. ArduCopter does not roll back: it holds the new
    items it got followed by the old mission's rest (the simulator too). The controller, once the
    link is back, gives the vehicle its last verified mission again and says so."""
    fleet = await sim_fleet(count=1, speedup=SPEEDUP)
    sv = fleet[0]
    home = (sv.truth.lat, sv.truth.lon)
    old = get_sortie(home, [(40.0 * i, 0.0) for i in range(1, 11)], name="old").items
    new = get_sortie(home, [(0.0, 40.0 * i) for i in range(1, 11)], name="new").items
    v = await connect_sim(sv.url, transfer={"item_timeout_s": 0.1, "item_attempts": 5, "transfer_attempts": 1})
    try:
        await v.mission.upload_verified(old)
        held_during_cut: list[list[int]] = []
        received_before_cut: list[int] = []

        async def cut_half_way() -> None:
            while sv.mission.upload is None or len(sv.mission.upload.items) < len(new) // 2:
                await asyncio.sleep(0)
            sv.faults.cut_link(10.0)  # vehicle seconds: longer than our transfer's patience
            received_before_cut.append(len(sv.mission.upload.items))
            held_during_cut.append([it.y for it in sv.mission.lists[MissionType.MISSION]])

        cutter = asyncio.create_task(cut_half_way())
        with pytest.raises(MissionTransferError) as err:
            await v.mission.upload_verified(new)
        await cutter
        lons = lambda items: [int(round(it.lon * 1e7)) for it in items]  # noqa: E731
        mixed, k = held_during_cut[0], received_before_cut[0]
        assert k < len(new) - 1 and mixed == lons(new)[:k] + lons(old)[k:], \
            "the vehicle should have held the new items it got followed by the old mission's rest"
        assert "holds its last verified mission again" in str(err.value)
        await v.mission.verify(old)  # what the vehicle holds now: the old mission, whole
    finally:
        await v.close()


async def test_failed_transfer_without_a_verified_mission_clears_it(sim_fleet):
    """No mission verified on this vehicle yet: after a refused upload the list is cleared (only
    home), never left half-written, and the error says so."""
    fleet = await sim_fleet(count=1, speedup=SPEEDUP)
    sv = fleet[0]
    home = (sv.truth.lat, sv.truth.lon)
    v = await connect_sim(sv.url)
    try:
        await v.mission.upload(get_sortie(home, [(40.0 * i, 0.0) for i in range(1, 6)]).items)  # not verified
        bad = list(get_sortie(home, [(0.0, 40.0 * i) for i in range(1, 6)]).items)
        bad[4] = MissionItem(31999, alt_m=30)  # passes no check of ours: only the vehicle refuses it
        with pytest.raises(MissionTransferError) as err:
            await v.mission._upload_and_verify(bad, MissionType.MISSION)  # the vehicle refuses item 4 ...
        assert len(sv.mission.lists[MissionType.MISSION]) == len(bad)  # ... and holds a mix: 4 new, 4 old
        outcome = await v.mission._leave_known(MissionType.MISSION)
        assert "cleared (no verified mission to restore)" in outcome
        assert len(sv.mission.lists[MissionType.MISSION]) <= 1
    finally:
        await v.close()


async def test_upload_right_after_boot_waits_for_the_vehicle_to_be_ready(sim_fleet, caplog):
    """Right after boot ArduCopter answers MISSION_COUNT with NO_SPACE until its EKF has an origin
    (recorded): the sortie is not failed, the upload is asked again until the vehicle takes it."""
    fleet = await sim_fleet(count=1, speedup=20.0, fast_start=False)  # EKF origin after ~20 vehicle s
    sv = fleet[0]
    v = await connect_sim(sv.url, speedup=20.0)
    try:
        caplog.set_level("INFO", logger="flight.mission")
        assert not sv.home_set
        items = get_sortie((sv.truth.lat, sv.truth.lon), [(40.0, 0.0)]).items
        await v.mission.upload_verified(items)
        assert "not ready for a mission upload (NO_SPACE)" in caplog.text
        assert len(sv.mission.lists[MissionType.MISSION]) == len(items)
    finally:
        await v.close()


@pytest.mark.sitl
async def test_sitl_keeps_hand_written_qgc_plans_as_the_storage_model_says(sitl_url):
    """Real ArduCopter SITL (ARDUPILOT_SITL): plans written as QGroundControl writes them (survey
    and corridor ComplexItems, null params, DO_JUMP, fence, rally) upload and verify against what
    the storage model says the vehicle keeps, uploaded right after boot (the vehicle answers
    NO_SPACE until ready: waited for). A plan with items it would refuse is not sent at all."""
    from mission_planner import read_plan

    data = Path(__file__).resolve().parents[1] / "planner" / "data"
    v = await connect_sim(sitl_url, speedup=SITL_SPEEDUP)
    try:
        for name in ("qgc_survey.plan", "qgc_corridor_jump.plan"):
            mission = read_plan(data / name)
            await v.mission.upload_sortie(mission, write_params=False)
            await v.mission.verify_sortie(mission)
        with pytest.raises(MissionNotStorable, match="item 3 \\(command 113\\)"):
            await v.mission.upload_sortie(read_plan(data / "qgc_refused_items.plan"), write_params=False)
        await v.mission.verify_sortie(read_plan(data / "qgc_corridor_jump.plan"))  # still the last one
    finally:
        await v.close()
