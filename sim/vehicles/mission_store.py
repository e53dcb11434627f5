"""The three lists a vehicle stores (mission, fence, rally) and the MAVLink mission protocol.

Upload: MISSION_COUNT -> the vehicle asks MISSION_REQUEST seq 0, 1, ... (never _INT, like
ArduCopter) -> MISSION_ITEM_INT or MISSION_ITEM -> ... -> MISSION_ACK. A silent GCS gets the same
request again every second and, 8 s after the last item, MISSION_ACK 15 and "Mission upload
timeout". An unsupported command ends the upload with MISSION_ACK 3 at that item.
Download: MISSION_REQUEST_LIST -> MISSION_COUNT -> MISSION_REQUEST(_INT) n -> MISSION_ITEM(_INT) n.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

from pymavlink.dialects.v20 import ardupilotmega as mavlink

if TYPE_CHECKING:
    from sim.vehicles.link import GcsConnection

MISSION, FENCE, RALLY = 0, 1, 2
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
MAX_ITEMS = {MISSION: 724, FENCE: 84, RALLY: 10}  # SITL's storage limits

# Commands ArduCopter accepts in a mission (NAV, DO and CONDITION commands it implements).
MISSION_COMMANDS = frozenset({
    16, 17, 18, 19, 20, 21, 22, 30, 31, 42, 82, 83, 84, 85, 92, 93, 94,  # NAV
    112, 113, 114, 115,  # CONDITION
    176, 177, 178, 179, 181, 182, 183, 184, 185, 189, 191, 194, 195, 197, 200, 201, 202, 203, 204,
    205, 206, 207, 208, 211, 212, 213, 214, 215, 218, 219, 220, 222, 223, 3000, 2000, 2001, 2500, 2501,
    1000, 1001, 42600, 42006, 42007,
})
FENCE_COMMANDS = frozenset({5000, 5001, 5002, 5003, 5004})
RALLY_COMMANDS = frozenset({5100})
SUPPORTED = {MISSION: MISSION_COMMANDS, FENCE: FENCE_COMMANDS, RALLY: RALLY_COMMANDS}
# NAV commands without a location: ArduPilot stores and returns them in frame 0 (MAV_FRAME_GLOBAL).
_NO_LOCATION = frozenset({20, 93, 112, 113, 114, 115}) | {c for c in MISSION_COMMANDS if 176 <= c < 5000}


@dataclass(frozen=True, slots=True)
class WireItem:
    """One stored item, as it goes over the wire (x/y are degE7, z metres)."""

    command: int
    frame: int = 3
    param1: float = 0.0
    param2: float = 0.0
    param3: float = 0.0
    param4: float = 0.0
    x: int = 0
    y: int = 0
    z: float = 0.0
    autocontinue: int = 1

    @property
    def lat(self) -> float:
        return self.x / 1e7

    @property
    def lon(self) -> float:
        return self.y / 1e7


def _normalise(item: WireItem, mission_type: int) -> WireItem:
    """How ArduPilot stores an item: *_INT frames become plain ones, no-location items frame 0."""
    frame = {5: 0, 6: 3, 11: 10}.get(item.frame, item.frame)
    autocontinue = item.autocontinue
    if mission_type == MISSION and item.command in _NO_LOCATION:
        frame = 0
    if mission_type == FENCE:
        frame, autocontinue = 0, 0
    if mission_type == RALLY:
        frame, autocontinue = 3, 0
    return replace(item, frame=frame, autocontinue=autocontinue)


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

    def set_list(self, mission_type: int, items: list[WireItem]) -> None:
        """Replace a list directly (simulator API; the GCS uses the protocol)."""
        self.lists[mission_type] = [_normalise(i, mission_type) for i in items]
        self._on_changed(mission_type)

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
        if msg.count == 0:
            self.upload = None
            self.lists[mtype] = self.lists[mtype][:1] if mtype == MISSION else []
            self._on_changed(mtype)
            self._ack(conn, sysid, compid, ACK_ACCEPTED, mtype)
            return
        if msg.count > MAX_ITEMS[mtype]:
            self._ack(conn, sysid, compid, ACK_NO_SPACE, mtype)
            return
        self.upload = _Upload(conn, mtype, msg.count, [], 0, now, now, sysid, compid)
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
        if msg.command not in SUPPORTED[mtype]:
            self.upload = None
            self._ack(conn, sysid, compid, ACK_UNSUPPORTED, mtype)
            return
        if is_int:
            x, y = msg.x, msg.y
        else:
            x, y = int(round(msg.x * 1e7)), int(round(msg.y * 1e7))
        up.items.append(_normalise(WireItem(msg.command, msg.frame, msg.param1, msg.param2, msg.param3,
                                            msg.param4, x, y, float(msg.z), msg.autocontinue), mtype))
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
            return
        if now - up.last_rx_s >= UPLOAD_TIMEOUT_S:
            self.upload = None
            self._ack(up.conn, up.gcs_sys, up.gcs_comp, ACK_CANCELLED, up.mission_type)
            self._text(4, "Mission upload timeout")
            up.conn.flush()
            return
        if now - up.last_request_s >= UPLOAD_RETRY_S:
            # on the 1 s grid, not "now": coarse ticks at high speedup must not lose re-requests
            up.last_request_s += UPLOAD_RETRY_S
            self._request(up)
            up.conn.flush()
