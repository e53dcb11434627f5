"""Verified transfer of the three lists a vehicle stores: mission, fence and rally.

Upload follows the MAVLink mission protocol as ArduCopter speaks it: MISSION_COUNT, then answer
each MISSION_REQUEST / MISSION_REQUEST_INT with a MISSION_ITEM_INT, until MISSION_ACK. Every step
is resent after `item_timeout_s` without an answer, so a lossy radio slows a transfer but does
not break it. A verified upload then downloads the list again and compares it item by item
(the mission's home item 0 excepted: the vehicle rewrites it with its real home).
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from common.values import MissionItem, MissionType
from flight.errors import (MAV_MISSION_RESULT_NAMES, CommandRejected, MissionMismatch, MissionTransferError)
from flight.link import mav

if TYPE_CHECKING:
    from common.values import Mission
    from flight.vehicle import Vehicle

log = logging.getLogger(__name__)

# MISSION_ACK results that no retry can fix: the vehicle understood and said no.
_FINAL_RESULTS = {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14}
# Frames that differ only in how x/y are encoded; the vehicle reports the float variant back.
_FRAME_ALIASES = {5: 0, 6: 3, 11: 10}
# Commands whose frame the vehicle keeps; for the rest (DO_*, RTL, CONDITION_*) it rewrites it.
_POSITIONAL = {16, 17, 18, 19, 21, 22, 31, 82, 84, 85, 189, 195, 201, 5000, 5001, 5002, 5003, 5004, 5100}


def _close(a: float, b: float, tol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol


def first_mismatch(sent: Sequence[MissionItem], got: Sequence[MissionItem],
                   mission_type: int = MissionType.MISSION) -> str | None:
    """Why `got` (read back from the vehicle) is not `sent`, naming the first differing item; None if equal.

    Tolerances are what the vehicle's storage keeps: lat/lon 1e-7 degree, altitude 1 cm
    (1 m for rally points, stored in whole metres), params as float32.

    >>> a = [MissionItem(16, 32.0, 119.58, 0.0, frame=0), MissionItem(22, alt_m=30.0)]
    >>> first_mismatch(a, [MissionItem(16, 32.1, 119.6, 10.1, frame=0), MissionItem(22, alt_m=30.0)]) is None
    True
    >>> first_mismatch(a, [a[0], MissionItem(22, alt_m=35.0)])
    'item 1 (command 22): alt_m sent 30.0, vehicle has 35.0'
    """
    if len(sent) != len(got):
        return f"vehicle holds {len(got)} items, {len(sent)} were sent"
    start = 1 if mission_type == MissionType.MISSION else 0  # home item: rewritten by the vehicle
    alt_tol = 1.0 if mission_type == MissionType.RALLY else 0.011
    for seq in range(start, len(sent)):
        a, b = sent[seq], got[seq]
        checks: list[tuple[str, float, float, float]] = [
            ("command", a.command, b.command, 0),
            ("lat", a.lat, b.lat, 1.5e-7), ("lon", a.lon, b.lon, 1.5e-7), ("alt_m", a.alt_m, b.alt_m, alt_tol)]
        for name in ("param1", "param2", "param3", "param4"):
            va, vb = getattr(a, name), getattr(b, name)
            checks.append((name, va, vb, 1e-5 * max(1.0, abs(va)) if not math.isnan(va) else 0))
        if a.command in _POSITIONAL:
            checks.append(("frame", _FRAME_ALIASES.get(a.frame, a.frame), _FRAME_ALIASES.get(b.frame, b.frame), 0))
        if mission_type == MissionType.MISSION:
            checks.append(("autocontinue", a.autocontinue, b.autocontinue, 0))
        for name, va, vb, tol in checks:
            if not _close(float(va), float(vb), tol):
                return f"item {seq} (command {a.command}): {name} sent {va}, vehicle has {vb}"
    return None


def item_from_wire(msg) -> MissionItem:
    """A MISSION_ITEM_INT (or legacy MISSION_ITEM) as a MissionItem."""
    if msg.get_type() == "MISSION_ITEM_INT":
        lat, lon = msg.x / 1e7, msg.y / 1e7
    else:
        lat, lon = float(msg.x), float(msg.y)
    return MissionItem(msg.command, lat, lon, float(msg.z), frame=msg.frame, param1=msg.param1,
                       param2=msg.param2, param3=msg.param3, param4=msg.param4, autocontinue=msg.autocontinue)


def _type_of(msg) -> int:
    return getattr(msg, "mission_type", 0) or 0


class MissionClient:
    """`vehicle.mission`: upload / download / verify mission, fence and rally lists."""

    def __init__(self, vehicle: "Vehicle") -> None:
        self._v = vehicle
        self._lock = asyncio.Lock()  # one transfer at a time per vehicle: the protocol has no ids
        self._srtt_s: float | None = None  # smoothed item round trip, for TCP-like resend timing

    def _rtt_sample(self, rtt_s: float) -> None:
        self._srtt_s = rtt_s if self._srtt_s is None else 0.875 * self._srtt_s + 0.125 * rtt_s

    def _rto(self, misses: int) -> float:
        """Resend timeout: 4x the measured round trip (fast on loopback, patient on a radio),
        backing off by 1.5x per consecutive miss, never above the configured item timeout."""
        cap = self._v.config.transfer.item_timeout_s
        base = cap if self._srtt_s is None else min(cap, max(0.03, 4 * self._srtt_s))
        return min(cap, base * 1.5 ** misses)

    # ---- upload ----------------------------------------------------------------------------
    def _send_item(self, item: MissionItem, seq: int, mission_type: int) -> None:
        v = self._v
        v.send("mission_item_int", v.target_system, v.target_component, seq, item.frame, item.command, 0,
               item.autocontinue, item.param1, item.param2, item.param3, item.param4,
               int(round(item.lat * 1e7)), int(round(item.lon * 1e7)), float(item.alt_m), mission_type)

    async def upload(self, items: Sequence[MissionItem], mission_type: int = MissionType.MISSION) -> bool:
        """Send a list without reading it back. True when the vehicle acknowledged it; False when
        the final ACK never arrived (only a download can tell then). Raises on a refusal."""
        async with self._lock:
            return await self._upload_once(list(items), int(mission_type))

    async def _upload_once(self, items: list[MissionItem], mt: int) -> bool:
        v = self._v
        tc = v.config.transfer
        n = len(items)
        started = time.time()

        def fail(message: str, result: int | None = None, seq: int | None = None) -> MissionTransferError:
            return MissionTransferError(message, mission_type=mt, result=result, seq=seq, drone_id=v.drone_id,
                                        reasons=v.state.reasons(started))

        def send_count() -> None:
            v.send("mission_count", v.target_system, v.target_component, n, mt)

        with v.subscribe({"MISSION_REQUEST", "MISSION_REQUEST_INT", "MISSION_ACK"},
                         lambda m: _type_of(m) == mt) as sub:
            send_count()
            last_sent: int | None = None
            sent_at = time.monotonic()
            clean = True  # Karn: only time round trips of items sent once
            misses = 0
            while True:
                msg = await v.recv(sub, self._rto(misses))
                if msg is None:
                    misses += 1
                    clean = False
                    if last_sent is not None and last_sent == n - 1 and misses > 8:
                        return False  # the final ACK is lost somewhere; verification decides
                    if misses > tc.item_attempts:
                        what = "MISSION_COUNT" if last_sent is None else f"item {last_sent}"
                        raise fail(f"no answer from the vehicle after {what} ({misses} tries)", seq=last_sent)
                    if last_sent is None:
                        send_count()
                    else:
                        self._send_item(items[last_sent], last_sent, mt)
                    continue
                if clean and (msg.get_type() == "MISSION_ACK" or msg.seq == (last_sent if last_sent is not None else -1) + 1):
                    self._rtt_sample(time.monotonic() - sent_at)
                if msg.get_type() == "MISSION_ACK":
                    if msg.type == mav.MAV_MISSION_ACCEPTED:
                        if n == 0 or last_sent == n - 1:
                            return True
                        continue  # a stale ACK of an earlier transfer
                    if msg.type == mav.MAV_MISSION_INVALID_SEQUENCE:
                        # Our resend of an item it already has: it wants the next one, whose request we lost.
                        if last_sent is not None and last_sent == n - 1:
                            return False  # it has every item and its final ACK was lost: verify decides
                        if last_sent is not None and last_sent + 1 < n:
                            last_sent += 1
                            self._send_item(items[last_sent], last_sent, mt)
                            sent_at, clean = time.monotonic(), False
                        continue
                    if msg.type == mav.MAV_MISSION_OPERATION_CANCELLED and misses == 0 and last_sent is None:
                        continue
                    if msg.type == mav.MAV_MISSION_ERROR and last_sent == n - 1 and not clean:
                        # ArduCopter's answer to an item when no upload is open: our resend of the
                        # last item after its final ACK was lost. Only the read-back can tell.
                        return False
                    name = MAV_MISSION_RESULT_NAMES.get(msg.type, str(msg.type))
                    where = ""
                    if last_sent is not None:
                        where = f" at item {last_sent} (command {items[last_sent].command})"
                    raise fail(f"vehicle answered {name}{where}", result=msg.type, seq=last_sent)
                seq = msg.seq
                if seq >= n:
                    raise fail(f"vehicle asked for item {seq} of {n}", seq=seq)
                self._send_item(items[seq], seq, mt)
                clean = seq != last_sent
                last_sent = seq
                sent_at = time.monotonic()
                misses = 0

    # ---- download --------------------------------------------------------------------------
    async def download(self, mission_type: int = MissionType.MISSION) -> tuple[MissionItem, ...]:
        """The list as the vehicle holds it (for the mission, item 0 is its home)."""
        async with self._lock:
            return await self._download(int(mission_type))

    async def _download(self, mt: int) -> tuple[MissionItem, ...]:
        v = self._v
        tc = v.config.transfer
        started = time.time()

        def fail(message: str, result: int | None = None, seq: int | None = None) -> MissionTransferError:
            return MissionTransferError(message, mission_type=mt, result=result, seq=seq, drone_id=v.drone_id,
                                        reasons=v.state.reasons(started))

        with v.subscribe({"MISSION_COUNT", "MISSION_ITEM_INT", "MISSION_ITEM", "MISSION_ACK"},
                         lambda m: _type_of(m) == mt) as sub:
            n: int | None = None
            for _ in range(tc.item_attempts):
                v.send("mission_request_list", v.target_system, v.target_component, mt)
                deadline = time.monotonic() + tc.item_timeout_s * 2
                while n is None and (left := deadline - time.monotonic()) > 0:
                    msg = await v.recv(sub, left)
                    if msg is not None and msg.get_type() == "MISSION_COUNT":
                        n = msg.count
                if n is not None:
                    break
            if n is None:
                raise fail("no MISSION_COUNT in answer to MISSION_REQUEST_LIST")
            got: dict[int, MissionItem] = {}
            tries = dict.fromkeys(range(n), 0)
            in_flight: dict[int, float] = {}
            next_seq = 0

            def request(seq: int) -> None:
                tries[seq] += 1
                if tries[seq] > tc.item_attempts:
                    raise fail(f"item {seq} never arrived ({tc.item_attempts} requests)", seq=seq)
                v.send("mission_request_int", v.target_system, v.target_component, seq, mt)
                in_flight[seq] = time.monotonic()

            while len(got) < n:
                while len(in_flight) < tc.download_window and next_seq < n:
                    if next_seq not in got:
                        request(next_seq)
                    next_seq += 1
                rto = self._rto(0)
                msg = await v.recv(sub, rto)
                now = time.monotonic()
                if msg is not None:
                    t = msg.get_type()
                    if t in ("MISSION_ITEM_INT", "MISSION_ITEM") and msg.seq < n and msg.seq not in got:
                        got[msg.seq] = item_from_wire(msg)
                        asked = in_flight.pop(msg.seq, None)
                        if asked is not None and tries[msg.seq] == 1:
                            self._rtt_sample(now - asked)
                    elif t == "MISSION_ACK" and msg.type not in (0, mav.MAV_MISSION_INVALID_SEQUENCE):
                        name = MAV_MISSION_RESULT_NAMES.get(msg.type, str(msg.type))
                        raise fail(f"vehicle answered {name} while sending its list", result=msg.type)
                for seq, asked in list(in_flight.items()):
                    if now - asked >= self._rto(tries[seq] - 1):
                        request(seq)
            v.send("mission_ack", v.target_system, v.target_component, mav.MAV_MISSION_ACCEPTED, mt)
            return tuple(got[i] for i in range(n))

    # ---- verified --------------------------------------------------------------------------
    async def upload_verified(self, items: Sequence[MissionItem], mission_type: int = MissionType.MISSION) -> None:
        """Upload, read back, compare; retry the whole list on a transport failure or mismatch.

        Raises MissionTransferError with the vehicle's MISSION_ACK result for a refusal, or
        MissionMismatch naming the first differing item when the read-back never matches.
        """
        items = list(items)
        mt = int(mission_type)
        v = self._v
        last: MissionTransferError | None = None
        async with self._lock:
            for attempt in range(v.config.transfer.transfer_attempts):
                try:
                    await self._upload_once(items, mt)
                    got = await self._download(mt)
                except MissionTransferError as exc:
                    if exc.result in _FINAL_RESULTS:
                        raise
                    last = exc
                    log.info("%s: %s (attempt %d)", v.drone_id, exc, attempt + 1)
                    continue
                why = first_mismatch(items, got, mt)
                if why is None:
                    return
                last = MissionMismatch(why, mission_type=mt, drone_id=v.drone_id)
                log.info("%s: %s (attempt %d)", v.drone_id, last, attempt + 1)
        assert last is not None
        raise last

    async def verify(self, items: Sequence[MissionItem], mission_type: int = MissionType.MISSION) -> None:
        """Read the list back and compare it to `items` without uploading anything."""
        got = await self.download(mission_type)
        why = first_mismatch(list(items), got, int(mission_type))
        if why is not None:
            raise MissionMismatch(why, mission_type=int(mission_type), drone_id=self._v.drone_id)

    async def upload_sortie(self, mission: "Mission") -> None:
        """Mission, fence and rally of one sortie, each verified; the fence is enabled when present.

        The fence goes up first so that the vehicle never holds a new mission with an old fence.
        """
        await self.upload_verified(mission.fence_items(), MissionType.FENCE)
        await self.upload_verified(mission.rally_items(), MissionType.RALLY)
        await self.upload_verified(mission.items, MissionType.MISSION)
        safety = self._v.config.safety
        if safety.enable_fence and mission.fence:
            await self._v.params.set("FENCE_TYPE", safety.fence_type)
            if safety.fence_alt_max_m is not None:
                await self._v.params.set("FENCE_ALT_MAX", safety.fence_alt_max_m)
            await self._v.params.set("FENCE_ENABLE", 1)
        from flight.avoidance import enable_fence_avoidance
        await enable_fence_avoidance(self._v, mission)

    async def verify_sortie(self, mission: "Mission") -> None:
        await self.verify(mission.fence_items(), MissionType.FENCE)
        await self.verify(mission.rally_items(), MissionType.RALLY)
        await self.verify(mission.items, MissionType.MISSION)

    async def clear(self, mission_type: int = MissionType.MISSION) -> None:
        """MISSION_CLEAR_ALL, confirmed by its MISSION_ACK."""
        v = self._v
        async with self._lock:
            with v.subscribe({"MISSION_ACK"}, lambda m: _type_of(m) == int(mission_type)) as sub:
                for _ in range(v.config.link.command_attempts):
                    v.send("mission_clear_all", v.target_system, v.target_component, int(mission_type))
                    msg = await v.recv(sub, v.config.link.command_timeout_s)
                    if msg is not None:
                        if msg.type != 0:
                            raise MissionTransferError(
                                f"clear refused: {MAV_MISSION_RESULT_NAMES.get(msg.type, msg.type)}",
                                mission_type=int(mission_type), result=msg.type, drone_id=v.drone_id)
                        return
        raise MissionTransferError("no MISSION_ACK to MISSION_CLEAR_ALL", mission_type=int(mission_type),
                                   drone_id=v.drone_id)

    async def set_current(self, seq: int) -> None:
        """Make `seq` the mission's current item (DO_SET_MISSION_CURRENT, acked by ArduCopter)."""
        v = self._v
        try:
            await v.command_long(mav.MAV_CMD_DO_SET_MISSION_CURRENT, seq, what=f"set current mission item {seq}")
        except CommandRejected as exc:
            if exc.result != mav.MAV_RESULT_UNSUPPORTED:
                raise
            v.send("mission_set_current", v.target_system, v.target_component, seq)  # pre-4.4 firmware
        await v.wait_until(lambda s: s.mission_seq == seq, 5.0, what=f"mission item {seq} to become current")
