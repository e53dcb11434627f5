"""A controller-side MAVLink relay per drone: the radio we can switch off.

The Fleet connects to the relay instead of the vehicle; the relay copies bytes (TCP) or datagrams
(UDP) both ways. `cut(seconds)` drops everything in both directions for that long while keeping
the sockets open, exactly like a radio out of range: the vehicle stops hearing GCS heartbeats
(its FS_GCS failsafe acts) and the controller stops hearing the vehicle (flight's link-lost
watchdog fires), and when the cut ends the same connection simply carries traffic again.

It works for every vehicle kind reached over the network (built-in simulator, SITL, a real drone
behind a telemetry bridge): `tcp:` (the vehicle listens), `udpout:` (the vehicle listens for
datagrams) and `udpin:` (the vehicle sends to us). A serial radio cannot be relayed here;
the constructor refuses it with RunError naming the device.

    relay = LinkRelay("tcp:127.0.0.1:5760", drone_id="drone01")
    await relay.start()              # relay.url -> "tcp:127.0.0.1:<free port>" for the Fleet
    relay.cut(10.0)                  # ten seconds (of `clock`) of silence
"""
from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable

from runloop.errors import RunError

log = logging.getLogger(__name__)

CHUNK = 65536
CONNECT_TIMEOUT_S = 5.0


class LinkRelay:
    """One drone's link: `start()`, `url` for the Fleet, `cut(seconds)`, `stop()`."""

    def __init__(self, vehicle_url: str, *, drone_id: str = "", clock: Callable[[], float] = time.monotonic):
        from flight import FlightError
        from flight.link import parse_url

        self.vehicle_url = str(vehicle_url)
        try:
            self.address = parse_url(self.vehicle_url)
        except FlightError as exc:
            raise RunError(f"{drone_id or vehicle_url}: {exc}") from exc
        if self.address.kind not in ("tcp", "udpout", "udpin"):
            raise RunError(f"{drone_id or vehicle_url}: cannot relay a {self.address.kind} link "
                           f"({self.vehicle_url}); link cuts need a tcp: or udp link")
        self.drone_id = drone_id or self.vehicle_url
        self.clock = clock
        self.url = ""
        self.dropped_bytes = 0
        self._cut_until = float("-inf")
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._transports: list[asyncio.DatagramTransport] = []

    # ------------------------------------------------------------------ the cut
    def cut(self, seconds: float) -> None:
        """Drop every byte both ways for `seconds` of `clock` (scenario seconds in a patrol run)."""
        if seconds < 0:
            raise RunError(f"{self.drone_id}: a link cut must last >= 0 s, got {seconds}")
        self._cut_until = self.clock() + seconds
        log.info("%s: link cut for %.1f s", self.drone_id, seconds)

    @property
    def is_cut(self) -> bool:
        return self.clock() < self._cut_until

    def _passes(self, size: int) -> bool:
        if self.is_cut:
            self.dropped_bytes += size
            return False
        return True

    # ------------------------------------------------------------------ life
    async def start(self) -> str:
        """Open the relay's own end; returns (and sets) the URL the Fleet connects to."""
        a = self.address
        try:
            if a.kind == "tcp":
                self._server = await asyncio.start_server(self._on_tcp_client, "127.0.0.1", 0)
                port = self._server.sockets[0].getsockname()[1]
                self.url = f"tcp:127.0.0.1:{port}"
            elif a.kind == "udpout":
                self.url = await self._start_udp_towards_vehicle()
            else:
                self.url = await self._start_udp_from_vehicle()
        except OSError as exc:
            raise RunError(f"{self.drone_id}: cannot open a link relay for {self.vehicle_url}: {exc}") from exc
        return self.url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in self._writers:
            w.close()
        for t in self._transports:
            t.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    # ------------------------------------------------------------------ TCP
    async def _on_tcp_client(self, gcs_r: asyncio.StreamReader, gcs_w: asyncio.StreamWriter) -> None:
        a = self.address
        try:
            veh_r, veh_w = await asyncio.wait_for(asyncio.open_connection(a.host, a.port), CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            log.warning("%s: relay cannot reach the vehicle at %s: %s", self.drone_id, self.vehicle_url, exc)
            gcs_w.close()
            return
        self._writers += [gcs_w, veh_w]
        # Each direction is copied until either side closes; then both are closed so the Fleet
        # sees a broken stream (and reconnects) just as it would without the relay.
        up = asyncio.create_task(self._copy(gcs_r, veh_w))
        down = asyncio.create_task(self._copy(veh_r, gcs_w))
        self._tasks |= {up, down}
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (up, down):
                t.cancel()
                self._tasks.discard(t)
            for w in (gcs_w, veh_w):
                w.close()
                if w in self._writers:
                    self._writers.remove(w)

    async def _copy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                if self._passes(len(data)):
                    writer.write(data)
                    await writer.drain()
        except (ConnectionError, OSError):
            pass

    # ------------------------------------------------------------------ UDP
    async def _start_udp_towards_vehicle(self) -> str:
        """Vehicle listens at host:port (udpout for us): the Fleet sends to our port instead."""
        loop = asyncio.get_running_loop()
        relay = self
        gcs_addr: list = [None]

        class FromVehicle(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                if gcs_addr[0] is not None and relay._passes(len(data)):
                    front.sendto(data, gcs_addr[0])

        class FromGcs(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                gcs_addr[0] = addr
                if relay._passes(len(data)):
                    back.sendto(data)

        back, _ = await loop.create_datagram_endpoint(FromVehicle, remote_addr=(self.address.host, self.address.port))
        front, _ = await loop.create_datagram_endpoint(FromGcs, local_addr=("127.0.0.1", 0))
        self._transports += [back, front]
        return f"udpout:127.0.0.1:{front.get_extra_info('sockname')[1]}"

    async def _start_udp_from_vehicle(self) -> str:
        """Vehicle sends to host:port (udpin for us): we take that port and pass datagrams on to
        the Fleet, which listens on a port of its own."""
        loop = asyncio.get_running_loop()
        relay = self
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            fleet_port = s.getsockname()[1]
        vehicle_addr: list = [None]

        class FromVehicle(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                vehicle_addr[0] = addr
                if relay._passes(len(data)):
                    front.sendto(data)

        class FromGcs(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                if vehicle_addr[0] is not None and relay._passes(len(data)):
                    back.sendto(data, vehicle_addr[0])

        back, _ = await loop.create_datagram_endpoint(FromVehicle, local_addr=(self.address.host or "0.0.0.0",
                                                                               self.address.port))
        front, _ = await loop.create_datagram_endpoint(FromGcs, remote_addr=("127.0.0.1", fleet_port))
        self._transports += [back, front]
        return f"udpin:127.0.0.1:{fleet_port}"
