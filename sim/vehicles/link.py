"""GCS endpoints of one simulated vehicle: a TCP server (several GCS at once) and a UDP client.

Each connection has its own MAVLink parser and its own outgoing sequence numbers (like an
ArduPilot channel), its own telemetry stream rates, and applies the vehicle's link faults
(packet loss, added latency, cut link) in both directions.
"""
from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING

from pymavlink.dialects.v20 import ardupilotmega as mavlink

if TYPE_CHECKING:
    from sim.vehicles.ports import LinkedVehicle

log = logging.getLogger(__name__)


class GcsConnection:
    """One GCS link: parse what arrives, hand messages to the vehicle, send packed bytes out."""

    def __init__(self, vehicle: LinkedVehicle, name: str) -> None:
        self.vehicle = vehicle
        self.name = name
        self.parser = mavlink.MAVLink(None, srcSystem=vehicle.sysid, srcComponent=1)
        self.parser.robust_parsing = True
        self.out = mavlink.MAVLink(None, srcSystem=vehicle.sysid, srcComponent=1)
        # msgid -> interval (vehicle seconds); msgid -> next due vehicle time
        self.intervals: dict[int, float] = {}
        self.next_due: dict[int, float] = {}
        self._pending: list[bytes] = []
        self.param_stream: int | None = None  # next index while a PARAM_REQUEST_LIST is answered
        self.param_stream_t = 0.0
        self.closed = False
        self.rng = random.Random(f"{vehicle.seed}:{vehicle.sysid}:{name}")  # reproducible per seed

    # ---- outgoing
    def send(self, msg: mavlink.MAVLink_message) -> None:
        """Queue one message (packed now, with this link's sequence number); flushed per tick."""
        if self.closed:
            return
        self.out.srcSystem = self.vehicle.sysid
        self._pending.append(msg.pack(self.out))

    def flush(self) -> None:
        if not self._pending or self.closed:
            self._pending.clear()
            return
        faults = self.vehicle.faults
        packets = self._pending
        self._pending = []
        if faults.link_cut:
            return
        if faults.packet_loss_pct > 0:
            p = faults.packet_loss_pct / 100.0
            packets = [b for b in packets if self.rng.random() >= p]
            if not packets:
                return
        data = b"".join(packets)
        if faults.latency_ms > 0:
            asyncio.get_running_loop().call_later(faults.latency_ms / 1000.0, self._write, data)
        else:
            self._write(data)

    def _write(self, data: bytes) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    # ---- incoming
    def feed(self, data: bytes) -> None:
        faults = self.vehicle.faults
        if faults.link_cut or self.closed:
            return
        try:
            msgs = self.parser.parse_buffer(data) or []
        except mavlink.MAVError as exc:  # robust_parsing makes this rare; never kill the link
            log.debug("%s: bad MAVLink data: %s", self.name, exc)
            return
        if faults.packet_loss_pct > 0:
            p = faults.packet_loss_pct / 100.0
            msgs = [m for m in msgs if self.rng.random() >= p]
        if not msgs:
            return
        if faults.latency_ms > 0:
            asyncio.get_running_loop().call_later(faults.latency_ms / 1000.0, self._deliver, msgs)
        else:
            self._deliver(msgs)

    def _deliver(self, msgs: list) -> None:
        if self.closed:
            return
        for m in msgs:
            if m.get_type() == "BAD_DATA":
                continue
            try:
                self.vehicle.handle_message(self, m)
            except Exception:  # a bad message must never take the vehicle down
                log.exception("vehicle %d: error handling %s", self.vehicle.sysid, m.get_type())
        self.flush()


class TcpGcsConnection(GcsConnection, asyncio.Protocol):
    def __init__(self, vehicle: LinkedVehicle) -> None:
        GcsConnection.__init__(self, vehicle, "tcp")
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.name = f"tcp:{peer[0]}:{peer[1]}" if peer else "tcp"
        self.vehicle.add_connection(self)

    def data_received(self, data: bytes) -> None:
        self.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.vehicle.remove_connection(self)

    def _write(self, data: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        # A GCS that stops reading must not make us buffer without bound: drop telemetry instead.
        if t.get_write_buffer_size() > 4_000_000:
            return
        t.write(data)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UdpGcsConnection(GcsConnection, asyncio.DatagramProtocol):
    """Sends to a fixed GCS address (like SITL's --out udp:HOST:PORT) and accepts its replies."""

    def __init__(self, vehicle: LinkedVehicle, remote: tuple[str, int]) -> None:
        GcsConnection.__init__(self, vehicle, f"udp:{remote[0]}:{remote[1]}")
        self.remote = remote
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.feed(data)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable while no GCS listens
        pass

    def _write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        # keep datagrams under a typical MTU-ish size: split at packet boundaries
        self.transport.sendto(data, self.remote)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
