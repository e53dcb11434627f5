"""A minimal ArduCopter stand-in for protocol tests: heartbeat, position, parameters, modes and the
mission protocol answered the way ../shared/ardupilot/BEHAVIOUR.md records a real ArduCopter answering (MISSION_REQUEST,
INVALID_SEQUENCE for an unexpected item, home rewritten on download, each item acked and kept as
common.ardupilot_storage says ArduCopter does), with packet loss in both directions.

It is not a simulator (nothing flies); sim/vehicles is. It exists so the transfer and parameter
code is tested against a peer whose loss we control exactly, independent of the simulator.
"""
from __future__ import annotations

import asyncio
import random
import time

from pymavlink.dialects.v20 import ardupilotmega as m

from common.ardupilot_storage import WireItem, store

HOME = (32.0, 119.58, 10.1)
_PARAMS_47 = {"MAV_SYSID": 1, "WP_SPD": 10.0, "RTL_ALT_M": 15.0, "FS_GCS_ENABLE": 0, "FS_GCS_TIMEOUT": 5,
              "BATT_FS_LOW_ACT": 0, "BATT_LOW_VOLT": 10.5, "FENCE_ENABLE": 0, "FENCE_TYPE": 7}
_PARAMS_45 = {"SYSID_THISMAV": 1, "WPNAV_SPEED": 1000.0, "RTL_ALT": 1500.0, "FS_GCS_ENABLE": 0,
              "FS_GCS_TIMEOUT": 5, "BATT_FS_LOW_ACT": 0, "BATT_LOW_VOLT": 10.5, "FENCE_ENABLE": 0, "FENCE_TYPE": 7}


class _Out:
    def __init__(self, ap: "FakeAutopilot") -> None:
        self.ap = ap

    def write(self, buf: bytes) -> None:
        ap = self.ap
        if ap.writer is not None and ap.rng.random() >= ap.loss:
            ap.writer.write(buf)


class FakeAutopilot:
    def __init__(self, *, param_style: str = "4.7", loss: float = 0.0, seed: int = 0,
                 refuse_command: int | None = None, signing_key: bytes | None = None) -> None:
        self.loss = loss
        self.rng = random.Random(seed)
        self.params = dict(_PARAMS_47 if param_style == "4.7" else _PARAMS_45)
        self.mav = m.MAVLink(_Out(self), srcSystem=1, srcComponent=1)
        self.signing_key = signing_key
        if signing_key:
            self.mav.signing.secret_key = signing_key
            self.mav.signing.sign_outgoing = True
            self.mav.signing.timestamp = int((time.time() - 1420070400) * 1e5)
        self.unsigned_rejected = 0
        self.writer: asyncio.StreamWriter | None = None
        self.lists: dict[int, list] = {0: [], 1: [], 2: []}
        self.custom_mode = 0
        self.refuse_command = refuse_command
        self._rx: dict | None = None  # upload in progress: {type, count, items, next}
        self.items_received = 0
        # Test hook: what a download returns instead of the stored list (a corrupting vehicle / link)
        self.corrupt_readback = None  # Callable[[mission_type, list[WireItem]], list[WireItem]] | None
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> "FakeAutopilot":
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        for t in self._tasks:
            t.cancel()
        if self.writer is not None:
            self.writer.close()
        self._server.close()

    @property
    def url(self) -> str:
        return f"tcp:127.0.0.1:{self.port}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except (asyncio.CancelledError, ConnectionError):
            pass  # the test is over or the controller hung up

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._tasks.append(asyncio.create_task(self._telemetry()))
        parser = m.MAVLink(None)
        parser.robust_parsing = True
        if self.signing_key:
            parser.signing.secret_key = self.signing_key  # unsigned or wrongly signed frames are dropped
        while data := await reader.read(65536):
            for msg in parser.parse_buffer(data) or ():
                if msg.get_type() == "BAD_DATA":
                    self.unsigned_rejected += 1
                    continue
                if self.rng.random() < self.loss:
                    continue
                self._handle(msg)

    async def _telemetry(self) -> None:
        while True:
            self.mav.heartbeat_send(m.MAV_TYPE_QUADROTOR, m.MAV_AUTOPILOT_ARDUPILOTMEGA, 89, self.custom_mode, 3)
            self.mav.global_position_int_send(0, int(HOME[0] * 1e7), int(HOME[1] * 1e7), int(HOME[2] * 1000), 0,
                                              0, 0, 0, 0)
            self.mav.home_position_send(int(HOME[0] * 1e7), int(HOME[1] * 1e7), int(HOME[2] * 1000),
                                        0, 0, 0, [1, 0, 0, 0], 0, 0, 0)
            await asyncio.sleep(0.2)

    def _readback(self, mission_type: int) -> list:
        items = self.lists[mission_type]
        return self.corrupt_readback(mission_type, list(items)) if self.corrupt_readback else items

    def _handle(self, msg) -> None:
        t = msg.get_type()
        if t == "PARAM_REQUEST_READ":
            name = msg.param_id
            if name in self.params:
                self.mav.param_value_send(name.encode(), self.params[name], 9, len(self.params), 0)
            else:
                self.mav.param_error_send(255, 190, name.encode(), -1, 1)
        elif t == "PARAM_SET":
            if msg.param_id in self.params:  # unknown names get no answer, as on ArduCopter
                self.params[msg.param_id] = msg.param_value
                self.mav.param_value_send(msg.param_id.encode(), msg.param_value, 9, len(self.params), 0)
        elif t == "COMMAND_LONG":
            result = 0
            if msg.command == self.refuse_command:
                result = 4
                self.mav.statustext_send(2, b"Arm: Need Position Estimate")
            elif msg.command == m.MAV_CMD_DO_SET_MODE:
                self.custom_mode = int(msg.param2)
            self.mav.command_ack_send(msg.command, result)
        elif t == "MISSION_COUNT":
            self._rx = {"type": msg.mission_type, "count": msg.count, "items": [], "next": 0}
            if msg.count == 0:
                self.lists[msg.mission_type] = []
                self._rx = None
                self.mav.mission_ack_send(255, 190, 0, msg.mission_type)
            else:
                self.mav.mission_request_send(255, 190, 0, msg.mission_type)
        elif t == "MISSION_ITEM_INT":
            rx = self._rx
            if rx is None or msg.mission_type != rx["type"] or msg.seq != rx["next"]:
                self.mav.mission_ack_send(255, 190, m.MAV_MISSION_INVALID_SEQUENCE, msg.mission_type)
                return
            result, kept = store(WireItem(msg.command, msg.frame, msg.param1, msg.param2, msg.param3, msg.param4,
                                          msg.x, msg.y, msg.z, msg.autocontinue), msg.mission_type,
                                 upload_count=rx["count"], stored_count=len(self.lists[msg.mission_type]))
            if kept is None:
                self._rx = None
                self.mav.mission_ack_send(255, 190, result, msg.mission_type)
                return
            self.items_received += 1
            rx["items"].append(kept)
            rx["next"] += 1
            if rx["next"] == rx["count"]:
                self.lists[rx["type"]] = rx["items"]
                self._rx = None
                self.mav.mission_ack_send(255, 190, 0, msg.mission_type)
            else:
                self.mav.mission_request_send(255, 190, rx["next"], msg.mission_type)
        elif t == "MISSION_REQUEST_LIST":
            self.mav.mission_count_send(255, 190, len(self._readback(msg.mission_type)), msg.mission_type)
        elif t == "MISSION_REQUEST_INT":
            items = self._readback(msg.mission_type)
            if msg.seq >= len(items):
                return
            it = items[msg.seq]  # as ArduCopter stores it (common.ardupilot_storage)
            frame, x, y, z, auto = it.frame, it.x, it.y, it.z, it.autocontinue
            if msg.mission_type == 0 and msg.seq == 0:
                frame, x, y, z = 0, int(HOME[0] * 1e7), int(HOME[1] * 1e7), HOME[2]
            self.mav.mission_item_int_send(255, 190, msg.seq, frame, it.command, 0, auto, it.param1, it.param2,
                                           it.param3, it.param4, x, y, z, msg.mission_type)
