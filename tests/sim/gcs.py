"""A small asyncio ground station for the simulator's tests (pymavlink framing, no threads)."""
from __future__ import annotations

import asyncio
import contextlib
import time

from pymavlink.dialects.v20 import ardupilotmega as mavlink


class TestGcs:
    """One TCP link to a simulated vehicle: everything received is logged; waits scan the log."""

    __test__ = False  # not a pytest class

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sysid: int = 255,
                 compid: int = 190) -> None:
        self.reader, self.writer = reader, writer
        self.mav = mavlink.MAVLink(self, srcSystem=sysid, srcComponent=compid)
        self.parser = mavlink.MAVLink(None)
        self.parser.robust_parsing = True
        self.log: list[tuple[float, object]] = []
        self._new = asyncio.Event()
        self.heartbeats_on = True
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._beat())]
        self.target = 1
        self.clock = time.monotonic  # what log times are measured with (a fleet clock for replays)
        self.frozen = contextlib.nullcontext  # replays: the fleet clock's frozen()

    @classmethod
    async def connect(cls, url: str, streams_hz: int = 0, **kw) -> TestGcs:
        _, host, port = url.split(":")
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5)
        link = cls(reader, writer, **kw)
        if streams_hz:
            link.mav.request_data_stream_send(0, 0, 0, streams_hz, 1)
        return link

    def write(self, data: bytes) -> None:  # pymavlink calls this to send
        self.writer.write(data)

    async def _read(self) -> None:
        while True:
            data = await self.reader.read(65536)
            if not data:
                return
            with self.frozen():  # a replay's GCS takes no vehicle time to read (like a fast real GCS)
                for m in self.parser.parse_buffer(data) or []:
                    if m.get_type() != "BAD_DATA":
                        self.log.append((self.clock(), m))
            self._new.set()

    async def _beat(self) -> None:
        while True:
            if self.heartbeats_on:
                self.mav.heartbeat_send(mavlink.MAV_TYPE_GCS, mavlink.MAV_AUTOPILOT_INVALID, 0, 0, 0)
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        self.writer.close()

    def mark(self) -> int:
        return len(self.log)

    def messages(self, mtype: str, since: int = 0) -> list:
        return [m for _, m in self.log[since:] if m.get_type() == mtype]

    def texts(self, since: int = 0) -> list[str]:
        return [m.text for m in self.messages("STATUSTEXT", since)]

    async def wait_for(self, mtype: str | tuple[str, ...], pred=None, timeout: float = 5.0, since: int | None = None):
        """The first message of `mtype` (matching `pred`) logged at or after `since` (default: now)."""
        types = (mtype,) if isinstance(mtype, str) else mtype
        i = len(self.log) if since is None else since
        deadline = time.monotonic() + timeout
        while True:
            while i < len(self.log):
                m = self.log[i][1]
                i += 1
                if m.get_type() in types and (pred is None or pred(m)):
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {types} within {timeout} s")
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def wait_text(self, text: str, timeout: float = 5.0, since: int | None = None) -> str:
        m = await self.wait_for("STATUSTEXT", lambda m: text in m.text, timeout, since)
        return m.text

    async def command(self, command: int, *params: float, timeout: float = 3.0) -> int:
        p = list(params) + [0.0] * (7 - len(params))
        since = self.mark()
        self.mav.command_long_send(self.target, 1, command, 0, *p)
        ack = await self.wait_for("COMMAND_ACK", lambda m: m.command == command, timeout, since)
        return ack.result

    async def command_int(self, command: int, frame: int, p1, p2, p3, p4, x: int, y: int, z: float,
                          timeout: float = 3.0) -> int:
        since = self.mark()
        self.mav.command_int_send(self.target, 1, frame, command, 0, 0, p1, p2, p3, p4, x, y, z)
        ack = await self.wait_for("COMMAND_ACK", lambda m: m.command == command, timeout, since)
        return ack.result

    async def set_mode(self, mode: int) -> int:
        return await self.command(mavlink.MAV_CMD_DO_SET_MODE, 1, mode)

    async def wait_heartbeat(self, pred=None, timeout: float = 5.0):
        return await self.wait_for("HEARTBEAT", pred, timeout)

    async def upload(self, items: list[dict], mission_type: int = 0, timeout: float = 5.0) -> int:
        """Upload like a GCS does; returns the MISSION_ACK type. A vehicle not ready yet (NO_SPACE
        to MISSION_COUNT, right after boot) is asked again, as a GCS would, until `timeout`."""
        since = self.mark()
        deadline = asyncio.get_running_loop().time() + timeout
        self.mav.mission_count_send(self.target, 1, len(items), mission_type)
        first = True
        while True:
            m = await self.wait_for(("MISSION_REQUEST", "MISSION_REQUEST_INT", "MISSION_ACK"),
                                    lambda m: m.mission_type == mission_type, timeout, since)
            since = self.mark()
            if m.get_type() == "MISSION_ACK":
                if first and m.type == 4 and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(0.05)
                    since = self.mark()
                    self.mav.mission_count_send(self.target, 1, len(items), mission_type)
                    continue
                return m.type
            first = False
            it = items[m.seq]
            self.mav.mission_item_int_send(
                self.target, 1, m.seq, it.get("frame", 6), it["cmd"], 0, 1, *it.get("p", [0, 0, 0, 0]),
                int(round(it.get("lat", 0) * 1e7)), int(round(it.get("lon", 0) * 1e7)), it.get("alt", 0), mission_type)

    async def download(self, mission_type: int = 0) -> list:
        since = self.mark()
        self.mav.mission_request_list_send(self.target, 1, mission_type)
        cnt = await self.wait_for("MISSION_COUNT", None, 3, since)
        out = []
        for seq in range(cnt.count):
            since = self.mark()
            self.mav.mission_request_int_send(self.target, 1, seq, mission_type)
            out.append(await self.wait_for("MISSION_ITEM_INT", lambda m, s=seq: m.seq == s, 3, since))
        self.mav.mission_ack_send(self.target, 1, 0, mission_type)
        return out
