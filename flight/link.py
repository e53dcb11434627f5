"""A pymavlink connection driven from asyncio.

pymavlink's `mavutil.mavlink_connection` opens the transport (TCP, UDP in/out, serial); its socket
is then watched with `loop.add_reader`, so dozens of vehicles share one event loop and no thread.
Encoding and decoding use the MAVLink 2 ardupilotmega dialect directly (not the process-wide
`mavutil.mavlink` module, which another part of the program may have set to MAVLink 1), and that
is also where optional message signing lives.
"""
from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pymavlink import mavutil
from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from flight.errors import LinkError, UrlError

log = logging.getLogger(__name__)

mav = mavlink2  # constants (MAV_CMD_*, MAV_FRAME_*) for the rest of the package

# A TCP send() on the non-blocking socket may take only part of a frame when the kernel buffer is
# full; the rest waits here and goes out when the socket is writable again, in order. The wait is
# bounded by size: once this much is queued, new frames are dropped whole (as a saturated radio
# drops them) rather than queued without end; a frame is never cut, which would corrupt the stream.
MAX_SEND_BACKLOG_BYTES = 256 * 1024

_HOST_PORT = re.compile(r"^(?P<host>[^:]*):(?P<port>\d{1,5})$")


@dataclass(frozen=True, slots=True)
class LinkAddress:
    """Where a vehicle is: `kind` is tcp, udpin, udpout or serial."""

    kind: str
    host: str = ""
    port: int = 0
    device: str = ""
    baud: int = 57600

    @property
    def is_stream(self) -> bool:
        """TCP and serial links break and must be reopened; UDP just goes quiet."""
        return self.kind in ("tcp", "serial")

    def pymavlink_device(self) -> str:
        if self.kind == "serial":
            return self.device
        return f"{self.kind}:{self.host}:{self.port}"

    def with_port_offset(self, offset: int) -> "LinkAddress":
        if self.kind == "serial":
            raise UrlError(f"cannot offset a serial device ({self.device}) by {offset}")
        return LinkAddress(self.kind, self.host, self.port + offset)

    def __str__(self) -> str:
        if self.kind == "serial":
            return f"{self.device},{self.baud}"
        return self.pymavlink_device()


def parse_url(url: str) -> LinkAddress:
    """Parse a connection URL.

    >>> parse_url("tcp:127.0.0.1:5760")
    LinkAddress(kind='tcp', host='127.0.0.1', port=5760, device='', baud=57600)
    >>> parse_url("/dev/ttyUSB0,921600").baud
    921600
    >>> parse_url("udpin:0.0.0.0:14550").kind
    'udpin'
    """
    text = url.strip()
    if not text:
        raise UrlError("empty connection URL")
    if text.startswith("serial:"):
        text = text[len("serial:"):]
        if ":" in text and "," not in text:
            dev, _, baud = text.rpartition(":")
            text = f"{dev},{baud}"
    if text.startswith("/") or re.match(r"^COM\d+", text, re.I):
        dev, _, baud = text.partition(",")
        try:
            return LinkAddress("serial", device=dev, baud=int(baud) if baud else 57600)
        except ValueError:
            raise UrlError(f"{url!r}: baud rate {baud!r} is not a number") from None
    kind, sep, rest = text.partition(":")
    kind = kind.lower()
    if not sep:
        raise UrlError(f"{url!r}: expected tcp:HOST:PORT, udpin:HOST:PORT, udpout:HOST:PORT or /dev/tty...,BAUD")
    if kind == "udp":
        kind = "udpin"
    if kind not in ("tcp", "udpin", "udpout"):
        raise UrlError(f"{url!r}: unknown transport {kind!r} (tcp, udpin, udpout or a serial device)")
    m = _HOST_PORT.match(rest)
    if not m or not 0 < int(m["port"]) < 65536:
        raise UrlError(f"{url!r}: expected {kind}:HOST:PORT with a port 1-65535")
    host = m["host"] or ("0.0.0.0" if kind == "udpin" else "127.0.0.1")
    return LinkAddress(kind, host, int(m["port"]))


def load_signing_key(path: Path) -> bytes:
    """A 32-byte signing secret: raw 32 bytes, 64 hex digits, or a passphrase (SHA-256, as MAVProxy)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise LinkError(f"signing key file {path}: {exc.strerror}") from exc
    if len(raw) == 32:
        return raw
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        raise LinkError(f"signing key file {path} is empty")
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    return hashlib.sha256(text.encode()).digest()


class MavlinkLink:
    """One MAVLink connection; calls `on_message(msg)` on the event loop for each decoded message.

    A broken stream link (TCP reset, serial unplugged) is reopened every `reconnect_interval_s`
    until `close()`; sends while it is down are dropped, exactly as a radio drops them.
    """

    def __init__(self, address: LinkAddress, on_message: Callable[[object], None], *,
                 source_system: int = 255, source_component: int = 190,
                 signing_key: bytes | None = None, signing_link_id: int = 0,
                 reconnect_interval_s: float = 1.0, on_broken: Callable[[str], None] | None = None) -> None:
        self.address = address
        self._on_message = on_message
        self._on_broken = on_broken
        self._conn = None
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._reconnect_task: asyncio.Task | None = None
        self._reconnect_interval_s = reconnect_interval_s
        self.mav = mavlink2.MAVLink(self, srcSystem=source_system, srcComponent=source_component)
        self.mav.robust_parsing = True
        if signing_key is not None:
            self.mav.signing.secret_key = signing_key
            self.mav.signing.link_id = signing_link_id
            self.mav.signing.timestamp = int((time.time() - 1420070400) * 1e5)
            self.mav.signing.sign_outgoing = True
            # Only RADIO_STATUS (from the radio itself, which cannot sign) may arrive unsigned.
            self.mav.signing.allow_unsigned_callback = lambda _mav, msg_id: msg_id == mavlink2.MAVLINK_MSG_ID_RADIO_STATUS
        self.bytes_in = 0
        self.bytes_out = 0
        self.reopen_count = 0
        self.bad_frames = 0  # undecodable input dropped (garbage, cut frames, bad CRC, bad signature)
        self.last_bad_reason = ""
        self.frames_dropped = 0  # frames not sent because the TCP backlog was full
        self._backlog = bytearray()  # TCP bytes accepted by write() but not yet taken by the kernel

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing = False
        await self._open_once()

    async def _open_once(self) -> None:
        a = self.address
        kwargs: dict = {"source_system": self.mav.srcSystem, "source_component": self.mav.srcComponent}
        if a.kind == "tcp":
            kwargs["retries"] = 0
        if a.kind == "serial":
            kwargs["baud"] = a.baud
        try:
            conn = await asyncio.wait_for(
                asyncio.to_thread(mavutil.mavlink_connection, a.pymavlink_device(), **kwargs), 10.0)
        except asyncio.TimeoutError as exc:
            raise LinkError(f"{a}: opening the link timed out") from exc
        except (OSError, ValueError) as exc:
            raise LinkError(f"{a}: cannot open link: {exc}") from exc
        self._conn = conn
        self._fd = conn.port.fileno() if hasattr(conn.port, "fileno") else conn.fd
        self._loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            if self.address.kind == "tcp":
                data = conn.port.recv(65536)
                if not data:
                    self._broken("connection closed by the vehicle")
                    return
            else:
                data = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                return
            self._broken(str(exc))
            return
        if not data:
            return
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.feed(data)

    def feed(self, data: bytes) -> None:
        """Decode what arrived and hand each good message to `on_message`; garbage, cut frames and
        bad CRCs are counted (`bad_frames`, `last_bad_reason`) and dropped, never raised."""
        self.bytes_in += len(data)
        try:
            msgs = self.mav.parse_buffer(data)
        except Exception as exc:  # a corrupt frame must not kill the link; pymavlink raises bare MAVError
            self._bad_frame(str(exc))
            return
        for msg in msgs or ():
            if msg.get_type() == "BAD_DATA":
                self._bad_frame(getattr(msg, "reason", "") or "undecodable bytes")
                continue
            if isinstance(msg, mavlink2.MAVLink_unknown):
                # pymavlink returns a message id it has no definition for before checking its CRC
                # or signature: nothing here could use it, and with signing on it is unverified.
                self._bad_frame(f"unknown message id {msg.get_type().removeprefix('UNKNOWN_')}")
                continue
            self._on_message(msg)

    def _bad_frame(self, reason: str) -> None:
        self.bad_frames += 1
        self.last_bad_reason = reason
        log.debug("%s: dropped bad MAVLink data: %s", self.address, reason)

    def _broken(self, why: str) -> None:
        log.warning("%s: link broken: %s", self.address, why)
        self._teardown()
        if self._on_broken is not None and not self._closing:
            self._on_broken(why)
        if not self._closing and self.address.is_stream and self._reconnect_task is None:
            self._reconnect_task = self._loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        try:
            while not self._closing and self._conn is None:
                await asyncio.sleep(self._reconnect_interval_s)
                try:
                    await self._open_once()
                    self.reopen_count += 1
                    log.info("%s: link reopened", self.address)
                except LinkError as exc:
                    log.debug("%s: reopen failed: %s", self.address, exc)
        finally:
            self._reconnect_task = None

    def _teardown(self) -> None:
        if self._fd is not None and self._loop is not None:
            try:
                self._loop.remove_reader(self._fd)
                if self._backlog:
                    self._loop.remove_writer(self._fd)
            except Exception:  # loop already closed at interpreter exit
                pass
        self._fd = None
        self._backlog.clear()  # a reopened stream starts at a frame boundary
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
        self._conn = None

    # pymavlink's MAVLink object writes encoded frames here.
    def write(self, buf: bytes) -> None:
        conn = self._conn
        if conn is None:
            return
        if self.address.kind == "tcp":
            self._send_stream(bytes(buf))
            return
        try:
            conn.write(buf)
            self.bytes_out += len(buf)
        except (BlockingIOError, InterruptedError):
            pass  # socket buffer full: drop, as a saturated radio would
        except OSError as exc:
            if self.address.kind == "udpin" and exc.errno in (errno.EDESTADDRREQ, errno.ENOTCONN):
                return  # no peer heard from yet
            self._broken(str(exc))
        except TypeError:
            pass  # mavudp.write before any peer address is known

    def _send_stream(self, frame: bytes) -> None:
        """The whole frame, in order: what the socket does not take now waits in the backlog."""
        if self._backlog:
            if len(self._backlog) + len(frame) > MAX_SEND_BACKLOG_BYTES:
                self.frames_dropped += 1
                if self.frames_dropped == 1 or self.frames_dropped % 100 == 0:
                    log.warning("%s: vehicle not reading; %d frames dropped (%d bytes waiting)",
                                self.address, self.frames_dropped, len(self._backlog))
                return
            self._backlog += frame
            self.bytes_out += len(frame)
            return
        try:
            sent = self._conn.port.send(frame)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._broken(str(exc))
            return
        self.bytes_out += len(frame)
        if sent < len(frame):
            self._backlog += frame[sent:]
            self._loop.add_writer(self._fd, self._flush_backlog)

    def _flush_backlog(self) -> None:
        conn = self._conn
        if conn is None or not self._backlog:
            return
        try:
            sent = conn.port.send(self._backlog)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._broken(str(exc))
            return
        del self._backlog[:sent]
        if not self._backlog:
            self._loop.remove_writer(self._fd)

    async def close(self) -> None:
        self._closing = True
        task = self._reconnect_task
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._teardown()
