"""The link relay a link cut goes through: bytes both ways, nothing during a cut, the same
sockets afterwards. Against plain loopback echo servers (the over-the-wire scenario test flies
vehicles through it)."""
import asyncio

import pytest

from runloop import RunError
from runloop.linkrelay import LinkRelay


class FakeClock:
    """Scenario time the test moves by hand."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def get_reply(reader: asyncio.StreamReader, timeout_s: float) -> bytes | None:
    """What arrives within timeout_s, or None."""
    try:
        return await asyncio.wait_for(reader.read(100), timeout_s)
    except TimeoutError:
        return None


async def test_tcp_relay_drops_both_ways_during_a_cut_and_keeps_the_connection():
    """Echo through the relay; during a cut nothing reaches the vehicle side (the echo server
    counts) and nothing comes back; after it the same connection works again."""
    received: list[bytes] = []
    connections = []

    async def echo(r, w):
        connections.append(w)
        while data := await r.read(100):
            received.append(data)
            w.write(data)
            await w.drain()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clock = FakeClock()
    relay = LinkRelay(f"tcp:127.0.0.1:{port}", drone_id="drone01", clock=clock)
    url = await relay.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
        writer.write(b"hello")
        assert await get_reply(reader, 2) == b"hello"
        relay.cut(10.0)
        writer.write(b"lost")
        assert await get_reply(reader, 0.3) is None
        assert b"lost" not in b"".join(received), "the vehicle side must not hear anything during a cut"
        clock.t = 10.5
        writer.write(b"back")
        assert await get_reply(reader, 2) == b"back"
        assert len(connections) == 1, "the cut must not close or reopen the connection"
        assert relay.dropped_bytes == len(b"lost")
        writer.close()
    finally:
        await relay.stop()
        server.close()


async def test_udp_relay_to_a_listening_vehicle_cuts_and_recovers():
    """udpout (the vehicle listens for datagrams): replies come back through the relay; none during a cut."""
    loop = asyncio.get_running_loop()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data, addr)

    vehicle, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    port = vehicle.get_extra_info("sockname")[1]
    clock = FakeClock()
    relay = LinkRelay(f"udpout:127.0.0.1:{port}", clock=clock)
    url = await relay.start()
    replies: asyncio.Queue = asyncio.Queue()

    class Gcs(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            replies.put_nowait(data)

    gcs, _ = await loop.create_datagram_endpoint(Gcs, remote_addr=("127.0.0.1", int(url.rsplit(":", 1)[1])))
    try:
        gcs.sendto(b"ping")
        assert await asyncio.wait_for(replies.get(), 2) == b"ping"
        relay.cut(5.0)
        gcs.sendto(b"lost")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(replies.get(), 0.3)
        clock.t = 6.0
        gcs.sendto(b"pong")
        assert await asyncio.wait_for(replies.get(), 2) == b"pong"
    finally:
        gcs.close()
        vehicle.close()
        await relay.stop()


def test_a_serial_link_cannot_be_relayed():
    """A radio on a serial port: refused by name, so its link cuts are refused, not skipped."""
    with pytest.raises(RunError, match="/dev/ttyUSB0"):
        LinkRelay("/dev/ttyUSB0,57600", drone_id="drone01")
