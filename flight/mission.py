"""Verified transfer of the three lists a vehicle stores: mission, fence and rally.

Upload follows the MAVLink mission protocol as ArduCopter speaks it: MISSION_COUNT, then answer
each MISSION_REQUEST / MISSION_REQUEST_INT with a MISSION_ITEM_INT, until MISSION_ACK. Every step
is resent after `item_timeout_s` without an answer, so a lossy radio slows a transfer but does
not break it. A verified upload first refuses what ArduCopter would refuse or change
(nothing sent), then downloads the list again and compares each item with what ArduCopter keeps
of it (common.ardupilot_storage; the mission's home item 0 excepted: the vehicle rewrites it
with its real home). A failed transfer leaves the vehicle the last verified list, or none.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from common import ardupilot_storage as storage
from common.ardupilot_storage import WireItem, f32
from common.values import MissionItem, MissionType
from flight.errors import (MAV_MISSION_RESULT_NAMES, MISSION_TYPE_NAMES, CommandRejected, FlightError,
                           MissionMismatch, MissionNotStorable, MissionTransferError, ParamError)
from flight.avoidance import OA_TYPE_DIJKSTRA, FenceAvoidance, NoFlyZones
from flight.link import mav

if TYPE_CHECKING:
    from common.values import Mission
    from typing import Protocol

    from flight.action import Action
    from flight.core import VehicleCore
    from flight.params import Params

    class MissionVehicle(VehicleCore, Protocol):
        """What the mission client needs: the core, parameters (FENCE_ENABLE, OA_*), actions (reboot)."""
        params: Params
        action: Action

log = logging.getLogger(__name__)

# MISSION_ACK results that no retry can fix: the vehicle understood and said no.
_FINAL_RESULTS = {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14}
NOT_READY_WAIT_S = 90.0  # how long a vehicle answering NO_SPACE right after boot is given to get ready
RESTORE_PATIENCE_S = 30.0  # how long a failed transfer keeps trying to leave the vehicle a known list


def to_wire(item: MissionItem) -> WireItem:
    """A MissionItem as the MISSION_ITEM_INT we send (lat/lon in degE7, params as float32)."""
    return WireItem(item.command, item.frame, f32(item.param1), f32(item.param2), f32(item.param3),
                    f32(item.param4), int(round(item.lat * 1e7)), int(round(item.lon * 1e7)), f32(item.alt_m),
                    item.autocontinue)


def storage_problems(items: Sequence[MissionItem], mission_type: int = MissionType.MISSION) -> list[str]:
    """Why ArduCopter would refuse these items, or silently keep other numbers than sent for an
    integer field, one line per item naming it; empty when the list can be uploaded as is.

    >>> storage_problems([MissionItem(16), MissionItem(19, param4=float("nan")), MissionItem(178, param1=-1)])
    ['item 1 (command 19): the vehicle refuses it (INVALID_PARAM4: NaN or infinite param4)', \
"item 2 (command 178): param1 -1.0 does not fit the vehicle's 0..255 field (it would keep 255)"]
    """
    mt = int(mission_type)
    out = []
    if len(items) > storage.MAX_ITEMS[mt]:
        out.append(f"{len(items)} items: the vehicle holds at most {storage.MAX_ITEMS[mt]}")
    for seq, item in enumerate(items):
        if mt == MissionType.MISSION and seq == 0:
            continue  # home: the vehicle replaces it with its own
        wire = to_wire(item)
        result, _ = storage.store(wire, mt, upload_count=len(items), stored_count=0)
        why = None
        if result == storage.UNSUPPORTED:
            name = storage.REFUSED.get(item.command)
            why = (f"ArduCopter does not support {name} in a mission" if name else
                   f"ArduCopter does not support command {item.command} in a {MISSION_TYPE_NAMES[mt]}")
        elif storage.INVALID_PARAM1 <= result <= storage.INVALID_PARAM1 + 3:
            k = result - storage.INVALID_PARAM1 + 1
            value = wire.params[k - 1]
            detail = "NaN or infinite" if not math.isfinite(value) else f"{value:g} out of range for"
            why = f"the vehicle refuses it ({MAV_MISSION_RESULT_NAMES[result]}: {detail} param{k})"
        elif result == storage.ERROR and item.command == 177:
            why = f"DO_JUMP target {item.param1:g} is not an item of this mission (1..{len(items) - 1})"
        elif result != storage.ACCEPTED:
            why = f"the vehicle refuses it ({MAV_MISSION_RESULT_NAMES.get(result, result)})"
        else:
            why = storage.changes_that_matter(wire, mt)
        if why:
            out.append(f"item {seq} (command {item.command}): {why}")
    return out


def sortie_storage_problems(mission: "Mission") -> list[str]:
    """`storage_problems` of a sortie's fence, rally and mission lists, each line naming its list."""
    lists = ((MissionType.FENCE, mission.fence_items()), (MissionType.RALLY, mission.rally_items()),
             (MissionType.MISSION, mission.items))
    return [f"{MISSION_TYPE_NAMES[mt]} {p}" for mt, items in lists for p in storage_problems(items, mt)]


def _close(a: float, b: float, tol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol


def first_mismatch(sent: Sequence[MissionItem], got: Sequence[MissionItem],
                   mission_type: int = MissionType.MISSION) -> str | None:
    """Why `got` (read back from the vehicle) is not what ArduCopter keeps of `sent`, naming the
    first differing item and field; None when every item is as the vehicle is known to store it
    (common.ardupilot_storage: non-INT frames, dropped and truncated params, LAND param4 = 1, ...).

    The mission's item 0 is home, rewritten by the vehicle: not compared. Tolerances are a tenth
    of what would matter: lat/lon 1.5e-7 degree, altitude 1 cm, params 1e-5 relative.

    >>> a = [MissionItem(16, 32.0, 119.58, 0.0, frame=0), MissionItem(21, 32.001, 119.58, 0.0, frame=6)]
    >>> first_mismatch(a, [MissionItem(16, 32.1, 119.6, 10.1, frame=0),
    ...                    MissionItem(21, 32.001, 119.58, 0.0, frame=3, param4=1.0)]) is None
    True
    >>> first_mismatch(a, [a[0], MissionItem(21, 32.001, 119.58, 5.0, frame=3, param4=1.0)])
    'item 1 (command 21): alt_m sent 0.0, vehicle has 5.0'
    """
    if len(sent) != len(got):
        return f"vehicle holds {len(got)} items, {len(sent)} were sent"
    mt = int(mission_type)
    start = 1 if mt == MissionType.MISSION else 0
    for seq in range(start, len(sent)):
        a, b = sent[seq], got[seq]
        _, kept = storage.store(to_wire(a), mt, upload_count=len(sent), stored_count=len(sent))
        want = item_of(kept) if kept is not None else a
        checks: list[tuple[str, float, float, float, float]] = [
            ("command", a.command, want.command, b.command, 0),
            ("lat", a.lat, want.lat, b.lat, 1.5e-7), ("lon", a.lon, want.lon, b.lon, 1.5e-7),
            ("alt_m", a.alt_m, want.alt_m, b.alt_m, 0.011)]
        for name in ("param1", "param2", "param3", "param4"):
            va, vw, vb = getattr(a, name), getattr(want, name), getattr(b, name)
            checks.append((name, va, vw, vb, 1e-5 * max(1.0, abs(vw)) if not math.isnan(vw) else 0))
        checks += [("frame", a.frame, want.frame, b.frame, 0),
                   ("autocontinue", a.autocontinue, want.autocontinue, b.autocontinue, 0)]
        for name, va, vw, vb, tol in checks:
            if not _close(float(vw), float(vb), tol):
                kept_as = "" if _close(float(va), float(vw), tol) else f" (kept as {vw})"
                return f"item {seq} (command {a.command}): {name} sent {va}{kept_as}, vehicle has {vb}"
    return None


def item_of(w: WireItem) -> MissionItem:
    """A stored (wire) item as a MissionItem."""
    return MissionItem(w.command, w.x / 1e7, w.y / 1e7, float(w.z), frame=w.frame, param1=w.param1,
                       param2=w.param2, param3=w.param3, param4=w.param4, autocontinue=w.autocontinue)


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

    def __init__(self, vehicle: "MissionVehicle") -> None:
        self._v = vehicle
        self._lock = asyncio.Lock()  # one transfer at a time per vehicle: the protocol has no ids
        self._srtt_s: float | None = None  # smoothed item round trip, for TCP-like resend timing
        self._verified: dict[int, list[MissionItem]] = {}  # per list: the last one verified on the vehicle

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
            not_ready_since: float | None = None
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
                    if msg.type == mav.MAV_MISSION_NO_SPACE and last_sent is None:
                        # ArduCopter right after boot (before its EKF has an origin): not ready yet
                        not_ready_since = not_ready_since or time.monotonic()
                        if time.monotonic() - not_ready_since < NOT_READY_WAIT_S:
                            log.info("%s: vehicle not ready for a %s upload (NO_SPACE); asking again in 0.5 s",
                                     v.drone_id, MISSION_TYPE_NAMES.get(mt, mt))
                            await asyncio.sleep(0.5)
                            send_count()
                            sent_at, clean, misses = time.monotonic(), False, 0
                            continue
                        raise fail(f"vehicle still answers NO_SPACE after {NOT_READY_WAIT_S:.0f} s "
                                   "(not ready, or its storage is full)", result=msg.type)
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

    # ---- verified ----------------------------------------------------------------------------
    async def upload_verified(self, items: Sequence[MissionItem], mission_type: int = MissionType.MISSION) -> None:
        """Check, upload, read back, compare with what ArduCopter keeps; retry the whole list on a
        transport failure or mismatch; wait while a just-booted vehicle answers NO_SPACE.

        Raises MissionNotStorable (nothing sent) for items the vehicle would refuse or change,
        MissionTransferError with the vehicle's MISSION_ACK result for a refusal, or MissionMismatch
        naming the first differing item. ArduCopter does not roll back a failed upload (it keeps the
        new items received, then the old list's rest), so after a failure the vehicle is given back
        the last list verified on it, or the list is cleared; the error says which.
        """
        items = list(items)
        mt = int(mission_type)
        v = self._v
        problems = storage_problems(items, mt)
        if problems:
            raise MissionNotStorable(problems, mission_type=mt, drone_id=v.drone_id)
        async with self._lock:
            try:
                await self._upload_and_verify(items, mt)
            except MissionTransferError as exc:
                if exc.result == storage.NO_SPACE and exc.seq is None:
                    raise  # refused at MISSION_COUNT: the vehicle's list is untouched
                raise exc.left_with(await self._leave_known(mt))
            self._verified[mt] = items

    async def _upload_and_verify(self, items: list[MissionItem], mt: int) -> None:
        v = self._v
        last: MissionTransferError | None = None
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

    async def _leave_known(self, mt: int) -> str:
        """After a failed transfer: the last list verified on this vehicle again, or an empty list.
        Keeps trying for RESTORE_PATIENCE_S (a radio dropout that broke the upload may be short).
        Returns what the vehicle now holds, for the operator."""
        name = MISSION_TYPE_NAMES[mt]
        previous = self._verified.get(mt)
        deadline = time.monotonic() + RESTORE_PATIENCE_S
        while True:
            try:
                if previous is not None:
                    await self._upload_once(previous, mt)
                    if first_mismatch(previous, await self._download(mt), mt) is None:
                        return f"the vehicle holds its last verified {name} again ({len(previous)} items)"
                await self._clear(mt)
                self._verified.pop(mt, None)
                return (f"the vehicle's {name} was cleared (no verified {name} to restore)" if previous is None
                        else f"the vehicle's {name} was cleared (restoring the last verified one failed)")
            except FlightError as exc:
                if time.monotonic() >= deadline:
                    log.warning("%s: could not restore or clear the %s: %s", self._v.drone_id, name, exc)
                    return (f"the vehicle may hold a mix of old and new {name} items: restoring and clearing "
                            f"failed for {RESTORE_PATIENCE_S:.0f} s ({exc.detail})")
                await asyncio.sleep(0.5)

    async def verify(self, items: Sequence[MissionItem], mission_type: int = MissionType.MISSION) -> None:
        """Read the list back and compare it to what ArduCopter keeps of `items`; uploads nothing."""
        got = await self.download(mission_type)
        why = first_mismatch(list(items), got, int(mission_type))
        if why is not None:
            raise MissionMismatch(why, mission_type=int(mission_type), drone_id=self._v.drone_id)
        self._verified[int(mission_type)] = list(items)

    async def upload_sortie(self, mission: "Mission", *, write_params: bool = True) -> None:
        """Mission, fence and rally of one sortie, each verified; the fence is enabled when present
        (unless `write_params` is False: then no parameter is written).

        Nothing is sent when any list holds an item the vehicle would refuse or change
        (MissionNotStorable). The fence goes up first so that the vehicle never holds a new
        mission with an old fence.
        """
        problems = sortie_storage_problems(mission)
        if problems:
            raise MissionNotStorable(problems, drone_id=self._v.drone_id)
        await self.upload_verified(mission.fence_items(), MissionType.FENCE)
        await self.upload_verified(mission.rally_items(), MissionType.RALLY)
        await self.upload_verified(mission.items, MissionType.MISSION)
        if not write_params:
            return
        safety = self._v.config.safety
        if safety.enable_fence and mission.fence:
            await self._v.params.set("FENCE_TYPE", safety.fence_type)
            if safety.fence_alt_max_m is not None:
                await self._v.params.set("FENCE_ALT_MAX", safety.fence_alt_max_m)
            await self._v.params.set("FENCE_ENABLE", 1)
        await enable_fence_avoidance(self._v, mission)

    async def verify_sortie(self, mission: "Mission") -> None:
        await self.verify(mission.fence_items(), MissionType.FENCE)
        await self.verify(mission.rally_items(), MissionType.RALLY)
        await self.verify(mission.items, MissionType.MISSION)

    async def clear(self, mission_type: int = MissionType.MISSION) -> None:
        """MISSION_CLEAR_ALL, confirmed by its MISSION_ACK."""
        async with self._lock:
            await self._clear(int(mission_type))
            self._verified.pop(int(mission_type), None)

    async def _clear(self, mission_type: int) -> None:
        v = self._v
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


# ---- no-fly zones on the way home (flight/avoidance.py has the geometry) -------------------
async def enable_fence_avoidance(vehicle: "MissionVehicle", mission: Mission) -> FenceAvoidance | None:
    """After the fence upload: switch on the vehicle's own avoidance if the fence has no-fly
    zones, verify it took, else fall back to controller-flown returns. Sets and returns
    `vehicle.fence_avoidance` (None: no exclusion zones, or avoidance turned off)."""
    v = vehicle
    cfg = v.config.avoidance
    if not cfg.enabled or not any(not z.inclusion for z in mission.fence):
        v.fence_avoidance = None
        return None
    no_fly = NoFlyZones.from_fence(mission.fence, cfg.margin_m)
    try:
        if not v.config.safety.enable_fence:
            # Dijkstra's only plans round an enabled polygon fence
            raise FlightError("the fence is not enabled (safety.enable_fence is off)", drone_id=v.drone_id)
        if not v.config.safety.fence_type & 4:
            raise FlightError(f"the polygon fence is off (safety.fence_type {v.config.safety.fence_type} lacks 4)",
                              drone_id=v.drone_id)
        detail = await _enable_onboard(v)
        onboard = True
    except FlightError as exc:
        onboard = False
        detail = (f"vehicle avoidance unavailable ({exc.detail}); the controller flies returns round the "
                  f"{len(no_fly.exclusions)} no-fly zone(s) in GUIDED")
        log.warning("%s: %s", v.drone_id, detail)
    v.fence_avoidance = FenceAvoidance(no_fly, onboard, detail, tuple((r.lat, r.lon) for r in mission.rally))
    log.info("%s: %s", v.drone_id, detail)
    return v.fence_avoidance


async def _enable_onboard(v: "MissionVehicle") -> str:
    cfg = v.config.avoidance
    try:
        current = await v.params.get("OA_TYPE")
    except ParamError as exc:
        raise FlightError("it has no OA_TYPE parameter: firmware built without object avoidance",
                          drone_id=v.drone_id) from exc
    changed = int(current) != OA_TYPE_DIJKSTRA
    if changed:
        try:
            await v.params.set("OA_TYPE", OA_TYPE_DIJKSTRA)
        except ParamError as exc:
            raise FlightError(f"it refused OA_TYPE={OA_TYPE_DIJKSTRA}", drone_id=v.drone_id) from exc
    try:
        # the OA_ group only appears once OA_TYPE is non-zero
        await v.params.set("OA_MARGIN_MAX", cfg.margin_m)
    except ParamError as exc:
        raise FlightError("OA_MARGIN_MAX could not be set", drone_id=v.drone_id) from exc
    stale_after = v.action.rebooted_at  # a "requires reboot" from before our last reboot is answered
    if changed or any("OA requires reboot" in t.text and t.time_s > stale_after for t in v.state.texts):
        if v.state.armed:
            raise FlightError("OA_TYPE takes effect after a reboot and the vehicle is armed", drone_id=v.drone_id)
        if not cfg.reboot_to_enable:
            raise FlightError("OA_TYPE takes effect after a reboot and avoidance.reboot_to_enable is off",
                              drone_id=v.drone_id)
        await v.action.reboot(timeout_s=cfg.reboot_timeout_s)
        got = await v.params.get("OA_TYPE")
        if int(got) != OA_TYPE_DIJKSTRA:
            raise FlightError(f"OA_TYPE reads {got:g} after the reboot", drone_id=v.drone_id)
    return f"onboard Dijkstra's avoidance (OA_TYPE 2, OA_MARGIN_MAX {cfg.margin_m:g} m)"
