"""The three lists a vehicle stores (mission, fence, rally) and the MAVLink mission protocol.

Upload: MISSION_COUNT -> the vehicle asks MISSION_REQUEST seq 0, 1, ... (never _INT, like
ArduCopter) -> MISSION_ITEM_INT or MISSION_ITEM -> ... -> MISSION_ACK. A silent GCS gets the same
request again every second and, 8 s after the last item, MISSION_ACK 15 and "Mission upload
timeout". Each item is stored as common.ardupilot_storage says ArduCopter stores it; a refused
item (unsupported command, NaN, bad DO_JUMP target ...) ends the upload with that MISSION_ACK.
A failed upload is not rolled back: mission and rally keep the new items received followed by the
old list's remaining ones (ArduPilot truncates at MISSION_COUNT and overwrites item by item); a
fence is only replaced when complete.
Download: MISSION_REQUEST_LIST -> MISSION_COUNT -> MISSION_REQUEST(_INT) n -> MISSION_ITEM(_INT) n.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from common.ardupilot_storage import FENCE, MAX_ITEMS, MISSION, RALLY, WireItem, store, stored_list

if TYPE_CHECKING:
    from sim.vehicles.link import GcsConnection

__all__ = ["FENCE", "MISSION", "RALLY", "MissionStore", "WireItem"]

MAV_MISSION_TYPE_ALL = 255

ACK_ACCEPTED = 0
ACK_ERROR = 1
ACK_UNSUPPORTED = 3
ACK_NO_SPACE = 4
ACK_INVALID_SEQUENCE = 13
ACK_DENIED = 14
ACK_CANCELLED = 15

UPLOAD_RETRY_S = 1.0
UPLOAD_TIMEOUT_S = 8.0


@dataclass(slots=True)
class _Upload:
    conn: GcsConnection
    mission_type: int
    count: int
    items: list[WireItem]
    next_seq: int
    last_rx_s: float
    last_request_s: float
    gcs_sys: int
    gcs_comp: int
    old: list[WireItem]  # the list before this upload: ArduPilot overwrites it item by item


class MissionStore:
    """Stored lists plus the transfer state; `send(conn, msg)` replies on one link."""

    def __init__(self, send: Callable[[GcsConnection, mavlink.MAVLink_message], None],
                 text: Callable[[int, str], None], on_changed: Callable[[int], None],
                 home_item: Callable[[], WireItem | None]) -> None:
        self.lists: dict[int, list[WireItem]] = {MISSION: [], FENCE: [], RALLY: []}
        self._send = send
        self._text = text
        self._on_changed = on_changed
        self._home_item = home_item
        self.upload: _Upload | None = None
        self.param_notices: list[tuple[str, float]] = []  # (param, value) PARAM_VALUE to broadcast

    # ---- views
    def mission(self) -> list[WireItem]:
        return self.lists[MISSION]

    def count(self, mission_type: int) -> int:
        n = len(self.lists[mission_type])
        if mission_type == MISSION:
            return max(n, 1)  # item 0 (home) always exists
        return n

    def item(self, mission_type: int, seq: int) -> WireItem | None:
        if mission_type == MISSION and seq == 0:
            home = self._home_item()
            if home is not None:
                return home
            return self.lists[MISSION][0] if self.lists[MISSION] else WireItem(16, 0)
        items = self.lists[mission_type]
        return items[seq] if 0 <= seq < len(items) else None

    # ---- protocol
    PROTOCOL_MESSAGES = frozenset({"MISSION_COUNT", "MISSION_ITEM_INT", "MISSION_ITEM", "MISSION_REQUEST_LIST",
                                   "MISSION_REQUEST_INT", "MISSION_REQUEST", "MISSION_CLEAR_ALL", "MISSION_ACK"})

    @staticmethod
    def _fits_degE7(deg: float) -> bool:
        return abs(deg) <= 214.7483647  # False for NaN and infinity too

    def handle(self, conn: GcsConnection, msg, now: float) -> bool:
        t = msg.get_type()
        mtype = getattr(msg, "mission_type", 0)
        if mtype not in self.lists and not (t == "MISSION_CLEAR_ALL" and mtype == MAV_MISSION_TYPE_ALL) \
                and t in self.PROTOCOL_MESSAGES and t != "MISSION_ACK":
            # A list this vehicle does not keep: refused as ArduPilot does, whatever the message.
            self._ack(conn, msg.get_srcSystem(), msg.get_srcComponent(), ACK_UNSUPPORTED, mtype)
            return True
        if t == "MISSION_ITEM" and self.upload is not None and self.upload.conn is conn \
                and not (self._fits_degE7(msg.x) and self._fits_degE7(msg.y)):
            # A float item whose place cannot be stored as int32 degE7 (NaN, infinite, huge):
            # the upload ends with the error, as ArduPilot's conversion to MISSION_ITEM_INT does.
            self.upload = None
            self._ack(conn, msg.get_srcSystem(), msg.get_srcComponent(),
                      mavlink.MAV_MISSION_INVALID_PARAM5_X if not self._fits_degE7(msg.x)
                      else mavlink.MAV_MISSION_INVALID_PARAM6_Y, mtype)
            return True
        if t == "MISSION_COUNT":
            self._start_upload(conn, msg, mtype, now)
        elif t in ("MISSION_ITEM_INT", "MISSION_ITEM"):
            self._item(conn, msg, mtype, now, t == "MISSION_ITEM_INT")
        elif t == "MISSION_REQUEST_LIST":
            self._send(conn, mavlink.MAVLink_mission_count_message(
                msg.get_srcSystem(), msg.get_srcComponent(), self.count(mtype), mtype))
        elif t in ("MISSION_REQUEST_INT", "MISSION_REQUEST"):
            self._download_item(conn, msg, mtype, t == "MISSION_REQUEST_INT")
        elif t == "MISSION_CLEAR_ALL":
            types = (MISSION, FENCE, RALLY) if mtype == MAV_MISSION_TYPE_ALL else (mtype,)
            for mt in types:
                if mt in self.lists:
                    self.lists[mt] = self.lists[mt][:1] if mt == MISSION else []
                    self._on_changed(mt)
            self._ack(conn, msg.get_srcSystem(), msg.get_srcComponent(), ACK_ACCEPTED, mtype)
            if MISSION in types:
                self.param_notices.append(("MIS_TOTAL", 0.0))
        elif t == "MISSION_ACK":
            pass  # end of a download; nothing to do
        else:
            return False
        return True

    def _ack(self, conn: GcsConnection, sysid: int, compid: int, result: int, mtype: int) -> None:
        self._send(conn, mavlink.MAVLink_mission_ack_message(sysid, compid, result, mtype))

    def _request(self, up: _Upload) -> None:
        self._send(up.conn, mavlink.MAVLink_mission_request_message(
            up.gcs_sys, up.gcs_comp, up.next_seq, up.mission_type))

    def _start_upload(self, conn: GcsConnection, msg, mtype: int, now: float) -> None:
        sysid, compid = msg.get_srcSystem(), msg.get_srcComponent()
        if mtype not in self.lists:
            self._ack(conn, sysid, compid, ACK_UNSUPPORTED, mtype)
            return
        if self.upload is not None and self.upload.conn is not conn:
            self._ack(conn, sysid, compid, ACK_DENIED, mtype)  # another GCS is uploading
            return
        if mtype == MISSION and self._home_item() is None:
            # Recorded right after boot: uploads refused until the vehicle has an EKF origin
            self._ack(conn, sysid, compid, ACK_NO_SPACE, mtype)
            return
        if msg.count > MAX_ITEMS[mtype]:
            self._ack(conn, sysid, compid, ACK_NO_SPACE, mtype)
            self._text(4, f"Only {MAX_ITEMS[mtype]} items are supported")
            return
        old = self.lists[mtype]
        if msg.count == 0:
            self.upload = None
            self.lists[mtype] = old[:1] if mtype == MISSION else []
            self._on_changed(mtype)
            self._ack(conn, sysid, compid, ACK_ACCEPTED, mtype)
            return
        if mtype != FENCE:
            self.lists[mtype] = old[:msg.count]  # ArduPilot truncates the stored list at MISSION_COUNT
        self.upload = _Upload(conn, mtype, msg.count, [], 0, now, now, sysid, compid, old)
        self._request(self.upload)

    def _item(self, conn: GcsConnection, msg, mtype: int, now: float, is_int: bool) -> None:
        up = self.upload
        sysid, compid = msg.get_srcSystem(), msg.get_srcComponent()
        if up is None or up.conn is not conn or up.mission_type != mtype:
            # ArduPilot answers an item nobody asked for with an error ACK
            self._ack(conn, sysid, compid, ACK_ERROR, mtype)
            return
        if msg.seq != up.next_seq:
            if msg.seq < up.next_seq:
                self._request(up)  # a duplicate: ask again for the one we need
            else:
                self._ack(conn, sysid, compid, ACK_INVALID_SEQUENCE, mtype)
            return
        if is_int:
            x, y = msg.x, msg.y
        else:
            x, y = int(round(msg.x * 1e7)), int(round(msg.y * 1e7))
        sent = WireItem(msg.command, msg.frame, msg.param1, msg.param2, msg.param3, msg.param4, x, y,
                        float(msg.z), msg.autocontinue)
        result, kept = store(sent, mtype, upload_count=up.count, stored_count=len(self.lists[mtype]))
        if kept is None:
            # The upload ends here; what was already written stays (no roll back)
            self.upload = None
            self._ack(conn, sysid, compid, result, mtype)
            self._on_changed(mtype)
            return
        up.items.append(kept)
        if mtype != FENCE:  # mission and rally are written item by item; a fence only when complete
            self.lists[mtype] = stored_list(up.old, up.items, up.count)
        up.next_seq += 1
        up.last_rx_s = up.last_request_s = now
        if up.next_seq < up.count:
            self._request(up)
            if mtype == MISSION and up.next_seq >= 2:
                self.param_notices.append(("MIS_TOTAL", float(up.next_seq)))
            return
        self.upload = None
        self.lists[mtype] = up.items
        self._ack(conn, sysid, compid, ACK_ACCEPTED, mtype)
        self._on_changed(mtype)
        if mtype == MISSION:
            self._text(6, "Flight plan received")
            self.param_notices.append(("MIS_TOTAL", float(len(up.items))))
        elif mtype == FENCE:
            self._text(7, "Fence Indexed OK")
            self.param_notices.append(("FENCE_TOTAL", float(len(up.items))))
        else:
            self.param_notices.append(("RALLY_TOTAL", float(len(up.items))))

    def _download_item(self, conn: GcsConnection, msg, mtype: int, as_int: bool) -> None:
        sysid, compid = msg.get_srcSystem(), msg.get_srcComponent()
        if mtype not in self.lists:
            self._ack(conn, sysid, compid, ACK_UNSUPPORTED, mtype)
            return
        it = self.item(mtype, msg.seq)
        if it is None or msg.seq >= self.count(mtype):
            self._ack(conn, sysid, compid, ACK_INVALID_SEQUENCE, mtype)
            return
        if as_int:
            out = mavlink.MAVLink_mission_item_int_message(
                sysid, compid, msg.seq, it.frame, it.command, 0, it.autocontinue, it.param1, it.param2,
                it.param3, it.param4, it.x, it.y, it.z, mtype)
        else:
            out = mavlink.MAVLink_mission_item_message(
                sysid, compid, msg.seq, it.frame, it.command, 0, it.autocontinue, it.param1, it.param2,
                it.param3, it.param4, it.x / 1e7, it.y / 1e7, it.z, mtype)
        self._send(conn, out)

    def tick(self, now: float) -> None:
        """Re-request a missing item every second; give up 8 s after the last one arrived."""
        up = self.upload
        if up is None:
            return
        if up.conn.closed:
            self.upload = None
            self._on_changed(up.mission_type)
            return
        if now - up.last_rx_s >= UPLOAD_TIMEOUT_S:
            self.upload = None
            self._on_changed(up.mission_type)
            self._ack(up.conn, up.gcs_sys, up.gcs_comp, ACK_CANCELLED, up.mission_type)
            self._text(4, "Mission upload timeout")
            up.conn.flush()
            return
        if now - up.last_request_s >= UPLOAD_RETRY_S:
            # on the 1 s grid, not "now": coarse ticks at high speedup must not lose re-requests
            up.last_request_s += UPLOAD_RETRY_S
            self._request(up)
            up.conn.flush()
