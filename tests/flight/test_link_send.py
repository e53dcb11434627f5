"""flight/link.py over TCP when the vehicle's socket is slow to take what we send: every frame
arrives whole and in order (a short send() is finished later, never cut), and a vehicle that stops
reading costs a bounded backlog, not unbounded memory."""
from __future__ import annotations

import asyncio
import socket

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from flight.link import MAX_SEND_BACKLOG_BYTES, MavlinkLink, parse_url

SMALL_BUFFER = 4096  # bytes; Linux doubles it, still far below what one burst of frames needs


def get_frames(data: bytes) -> list:
    """Every frame in `data`; a cut or corrupt frame shows up as BAD_DATA or a missing sequence number."""
    parser = mavlink2.MAVLink(None)
    parser.robust_parsing = True
    return list(parser.parse_buffer(data) or ())


async def read_all(conn: socket.socket, until_bytes: int, timeout_s: float = 10.0) -> bytes:
    loop = asyncio.get_running_loop()
    got = bytearray()
    async with asyncio.timeout(timeout_s):
        while len(got) < until_bytes:
            chunk = await loop.sock_recv(conn, 65536)
            if not chunk:
                break
            got += chunk
    return bytes(got)


async def open_slow_vehicle():
    """A listening 'vehicle' with a small receive buffer, and our link to it with a small send buffer."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    link = MavlinkLink(parse_url(f"tcp:127.0.0.1:{server.getsockname()[1]}"), lambda msg: None)
    await link.open()
    link._conn.port.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    conn, _ = await asyncio.get_running_loop().sock_accept(server)
    conn.setblocking(False)
    return server, conn, link


def send_numbered(link: MavlinkLink, first: int, count: int) -> None:
    for i in range(first, first + count):
        link.mav.named_value_int_send(i, b"seq", i)


async def test_frames_larger_than_the_socket_buffer_arrive_whole_and_in_order():
    """2,000 frames written at once into a 4 KiB socket buffer: the vehicle, reading later, decodes
    all 2,000, numbered 0..1999, with no bad data."""
    server, conn, link = await open_slow_vehicle()
    try:
        send_numbered(link, 0, 2000)
        frames = get_frames(await read_all(conn, link.bytes_out))
        assert [f.get_type() for f in frames if f.get_type() != "NAMED_VALUE_INT"] == []
        assert [f.value for f in frames] == list(range(2000))
        assert link.frames_dropped == 0
    finally:
        await link.close()
        conn.close()
        server.close()


async def test_a_vehicle_that_stops_reading_costs_a_bounded_backlog_and_frames_stay_whole():
    """The vehicle reads nothing while we send ~1.3 MB: the backlog stays under its bound, the
    excess frames are dropped whole (counted), and once it reads, what arrives is whole frames in
    order, then later frames flow again."""
    server, conn, link = await open_slow_vehicle()
    try:
        send_numbered(link, 0, 50_000)  # ~30 bytes each
        assert len(link._backlog) <= MAX_SEND_BACKLOG_BYTES and link.frames_dropped > 0
        first = get_frames(await read_all(conn, link.bytes_out))
        values = [f.value for f in first]
        assert all(f.get_type() == "NAMED_VALUE_INT" for f in first)
        assert values == list(range(len(values))) and len(values) == 50_000 - link.frames_dropped
        await asyncio.sleep(0)
        sent_before = link.bytes_out
        send_numbered(link, 60_000, 3)
        later = get_frames(await read_all(conn, link.bytes_out - sent_before))
        assert [f.value for f in later] == [60_000, 60_001, 60_002]
    finally:
        await link.close()
        conn.close()
        server.close()
