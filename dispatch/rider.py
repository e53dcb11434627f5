"""The motorcycle officer's side: `RiderClient` (library) and `patrol rider` (terminal app).

Nothing lost, nothing twice, on a weak link:
- a persistent MQTT session (fixed client id rider-{unit}, clean start off, session expiry) so
  the broker queues alerts while the phone is out of coverage or the broker restarts;
- alerts are PUBACKed only after they are stored, and stored by alert_id in a local SQLite file,
  so a redelivered or replayed alert is recognised and not shown again, even after a restart;
- acks (accept / decline / arrived / resolved) are stored first and re-sent after reconnecting.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import aiomqtt

from common.geo import bearing_deg, destination, distance_m
from dispatch.config import BrokerConfig
from dispatch.errors import DispatchError, PayloadError
from dispatch.mqtt import LastWill, MqttSession
from dispatch.schemas import (ALERT_CANCEL_SCHEMA, ALERT_SCHEMA, AckMessage, AlertCancelMessage, AlertMessage,
                              LocationMessage, PresenceMessage, dump, parse)
from dispatch.topics import Topics, check_id

log = logging.getLogger(__name__)

AlertCallback = Callable[[AlertMessage], Awaitable[None]]
CancelCallback = Callable[[AlertCancelMessage], Awaitable[None]]


class RiderAlertState(StrEnum):
    """Where an alert is on the rider's side (its store); the controller's view is journal.AlertStatus."""

    NEW = "new"  # shown, not answered yet
    ACCEPTED = "accepted"
    DECLINED = "declined"
    ARRIVED = "arrived"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"  # the controller stood the unit down


ON_SCREEN = frozenset({RiderAlertState.NEW, RiderAlertState.ACCEPTED, RiderAlertState.ARRIVED})  # still to act on
FINISHED = frozenset({RiderAlertState.RESOLVED, RiderAlertState.CANCELLED})  # a cancel changes nothing


class RiderStore:
    """Alerts seen (by alert_id) and acks not yet delivered, in one small SQLite file."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript("""
            CREATE TABLE IF NOT EXISTS alerts (alert_id TEXT PRIMARY KEY, incident_id TEXT, message BLOB,
                                               state TEXT NOT NULL, received_at REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS acks (seq INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL,
                                             action TEXT NOT NULL, ts REAL NOT NULL, sent INTEGER NOT NULL DEFAULT 0);
        """)

    def add_alert(self, alert: AlertMessage, raw: bytes) -> bool:
        """Store a new alert; False when this alert_id was seen before (a redelivery)."""
        cur = self.db.execute("INSERT OR IGNORE INTO alerts VALUES (?,?,?,?,?)",
                              (alert.alert_id, alert.incident.id, raw, RiderAlertState.NEW, time.time()))
        return cur.rowcount == 1

    def set_state(self, alert_id: str, state: str) -> None:
        self.db.execute("UPDATE alerts SET state=? WHERE alert_id=?", (state, alert_id))

    def state(self, alert_id: str) -> str | None:
        row = self.db.execute("SELECT state FROM alerts WHERE alert_id=?", (alert_id,)).fetchone()
        return row[0] if row else None

    def open_alerts(self) -> list[AlertMessage]:
        rows = self.db.execute(f"SELECT message FROM alerts WHERE state IN ({','.join('?' * len(ON_SCREEN))}) "
                               "ORDER BY received_at", tuple(ON_SCREEN)).fetchall()
        return [AlertMessage.model_validate_json(r[0]) for r in rows]

    def seen_ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT alert_id FROM alerts ORDER BY received_at")]

    def queue_ack(self, alert_id: str, action: str) -> int:
        return self.db.execute("INSERT INTO acks(alert_id, action, ts) VALUES (?,?,?)",
                               (alert_id, action, time.time())).lastrowid

    def unsent_acks(self) -> list[tuple[int, str, str, float]]:
        return self.db.execute("SELECT seq, alert_id, action, ts FROM acks WHERE sent=0 ORDER BY seq").fetchall()

    def mark_sent(self, seq: int) -> None:
        self.db.execute("UPDATE acks SET sent=1 WHERE seq=?", (seq,))

    def close(self) -> None:
        self.db.close()


ACTION_STATE = {"accept": RiderAlertState.ACCEPTED, "decline": RiderAlertState.DECLINED,
                "arrived": RiderAlertState.ARRIVED, "resolved": RiderAlertState.RESOLVED}


class RiderClient:
    """One unit's connection: receives alerts once each, sends acks and locations."""

    def __init__(self, broker: BrokerConfig, unit_id: str, store: RiderStore, *, topic_prefix: str = "patrol",
                 on_alert: AlertCallback | None = None, on_cancel: CancelCallback | None = None):
        self.unit_id = check_id(unit_id, "unit id")
        self.topics = Topics(topic_prefix)
        self.store = store
        self.on_alert = on_alert
        self.on_cancel = on_cancel
        self.received = 0  # raw alert deliveries, duplicates included
        self.duplicates = 0
        offline = dump(PresenceMessage(state="offline", reason="lost"))
        self.session = MqttSession(
            broker, client_id=f"rider-{unit_id}", persistent=True,
            will=LastWill(self.topics.unit_status(unit_id), offline, qos=1, retain=True),
            subscriptions=[(self.topics.unit_alerts(unit_id), 1)], manual_ack=True,
            on_connect=self._on_connect, name=f"rider {unit_id}")
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._flush_lock = asyncio.Lock()
        self._flushes: set[asyncio.Task] = set()

    async def start(self, wait_s: float | None = None) -> None:
        """Connect (and keep reconnecting) in the background; optionally wait for the first connection."""
        if self._task and not self._task.done():
            return
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.session.run(self._handle, self._stop), name=f"rider-{self.unit_id}")
        if wait_s:
            await self.session.wait_connected(wait_s)

    async def stop(self, sign_off: bool = True) -> None:
        """Disconnect. sign_off=False is like losing coverage: the broker keeps queueing alerts."""
        if sign_off and self.session.connected.is_set():
            try:
                await self.session.publish(self.topics.unit_status(self.unit_id),
                                           dump(PresenceMessage(state="offline", reason="signed_off", ts=time.time())),
                                           qos=1, retain=True, timeout_s=2)
            except DispatchError:
                pass
        self._stop.set()
        if self._task:
            await self._task
            self._task = None
        for task in list(self._flushes):  # acks not sent stay in the store for the next start
            task.cancel()
        await asyncio.gather(*self._flushes, return_exceptions=True)

    async def _on_connect(self) -> None:
        await self.session.publish(self.topics.unit_status(self.unit_id),
                                   dump(PresenceMessage(state="online", ts=time.time())), qos=1, retain=True)
        # Kept, so the task is not garbage-collected mid-flight and stop() can wait for it.
        task = asyncio.get_running_loop().create_task(self.flush_acks(), name=f"rider-{self.unit_id}-flush")
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _handle(self, message: aiomqtt.Message) -> None:
        payload = bytes(message.payload) if isinstance(message.payload, (bytes, bytearray)) else b""
        try:
            head = json.loads(payload).get("schema") if payload else None
        except (ValueError, AttributeError):
            head = None
        try:
            if head == ALERT_CANCEL_SCHEMA:
                cancel = parse(AlertCancelMessage, payload, message.topic.value)
                state = self.store.state(cancel.alert_id)
                if state is not None and state not in FINISHED:
                    self.store.set_state(cancel.alert_id, RiderAlertState.CANCELLED)
                    if self.on_cancel:
                        await self.on_cancel(cancel)
                return
            alert = parse(AlertMessage, payload, message.topic.value)
        except PayloadError as exc:
            log.warning("rider %s dropped a message: %s (schema %r)", self.unit_id, exc, head or ALERT_SCHEMA)
            return
        self.received += 1
        if not self.store.add_alert(alert, payload):
            self.duplicates += 1
            log.debug("alert %s already seen; not shown again", alert.alert_id)
            return
        if self.on_alert:
            await self.on_alert(alert)

    async def ack(self, alert_id: str, action: str, reason: str | None = None) -> None:
        """Record the answer (kept if the link is down) and send it as soon as possible."""
        if action not in ACTION_STATE:
            raise DispatchError(f"unknown ack action {action!r}; expected one of {sorted(ACTION_STATE)}")
        self.store.queue_ack(alert_id, action)
        self.store.set_state(alert_id, ACTION_STATE[action])
        await self.flush_acks()

    async def flush_acks(self) -> None:
        async with self._flush_lock:
            for seq, alert_id, action, ts in self.store.unsent_acks():
                msg = AckMessage(alert_id=alert_id, action=action, ts=ts)
                try:
                    await self.session.publish(self.topics.unit_acks(self.unit_id), dump(msg), qos=1)
                except DispatchError as exc:
                    log.info("rider %s: ack %s %s queued until reconnect (%s)", self.unit_id, action, alert_id, exc)
                    return
                self.store.mark_sent(seq)

    def publish_location(self, lat: float, lon: float, status: str = "available", speed_m_s: float | None = None,
                         heading_deg: float | None = None, battery_pct: int | None = None,
                         accuracy_m: float = 5.0) -> bool:
        """OwnTracks-style location, QoS 0 (the next fix supersedes a lost one)."""
        msg = LocationMessage(lat=lat, lon=lon, tst=int(time.time()), acc=accuracy_m, status=status,
                              vel=None if speed_m_s is None else round(speed_m_s * 3.6, 1),
                              cog=None if heading_deg is None else round(heading_deg % 360, 1), batt=battery_pct)
        return self.session.publish_nowait(self.topics.unit_location(self.unit_id), dump(msg), qos=0)


# ---------------------------------------------------------------------- terminal app
COMPASS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")


def compass(bearing: float) -> str:
    return COMPASS[int((bearing % 360) / 45 + 0.5) % 8]


def format_alert(alert: AlertMessage, snapshot_path: Path | None) -> str:
    inc = alert.incident
    minutes = alert.eta_s / 60
    lines = [
        "",
        "=" * 60,
        f"ALERT {alert.alert_id}  priority {alert.priority}",
        f"  {inc.kind.value.upper().replace('_', ' ')}  "
        + ("UNCONFIRMED: reported, no camera has seen it yet" if alert.unconfirmed
           else f"(confidence {inc.confidence:.0%})"),
        *([f"  \"{alert.text}\""] if alert.text else []),
        f"  {alert.distance_m:.0f} m {compass(alert.bearing_deg)} (bearing {alert.bearing_deg:.0f} deg), "
        f"ETA {minutes:.1f} min",
        f"  at {inc.lat:.6f}, {inc.lon:.6f}" + (f"  ±{inc.error_m:.0f} m" if inc.error_m is not None else "")
        + (f"  grid {inc.grid_id}" if inc.grid_id else ""),
        f"  answer within {max(0.0, alert.expires_at - time.time()):.0f} s",
    ]
    if snapshot_path:
        lines.append(f"  snapshot: {snapshot_path}")
    lines.append("  [a] accept  [d] decline  [r] arrived  [x] resolved  [q] quit")
    lines.append("=" * 60)
    return "\n".join(lines)


@dataclass
class GpsTrack:
    """Fixes replayed from a file: one `lat,lon` (CSV) or OwnTracks JSON object per line."""

    points: list[tuple[float, float]]

    @classmethod
    def load(cls, path: Path) -> "GpsTrack":
        points = []
        for n, line in enumerate(Path(path).read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                if line.startswith("{"):
                    obj = json.loads(line)
                    points.append((float(obj["lat"]), float(obj["lon"])))
                else:
                    lat, lon = line.split(",")[:2]
                    points.append((float(lat), float(lon)))
            except (ValueError, KeyError) as exc:
                raise DispatchError(f"{path}:{n}: not a fix (want 'lat,lon' or JSON with lat/lon): {line!r}") from exc
        if not points:
            raise DispatchError(f"{path}: no fixes")
        return cls(points)


class RiderApp:
    """`patrol rider`: alerts on the terminal, single keys to answer, location at 1 Hz."""

    def __init__(self, client: RiderClient, snapshots_dir: Path, gps: GpsTrack | None, simulate: bool,
                 start: tuple[float, float], speed_m_s: float = 10.0, out=sys.stdout):
        self.client = client
        self.snapshots_dir = snapshots_dir
        self.gps = gps
        self.simulate = simulate
        self.lat, self.lon = start
        self.speed_m_s = speed_m_s
        self.out = out
        self.current: AlertMessage | None = None
        self.status = "available"
        client.on_alert = self.show_alert
        client.on_cancel = self.show_cancel

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    async def show_alert(self, alert: AlertMessage) -> None:
        path = None
        data = alert.snapshot_bytes()
        if data:
            self.snapshots_dir.mkdir(parents=True, exist_ok=True)
            path = self.snapshots_dir / f"{alert.alert_id}.jpg"
            path.write_bytes(data)
        self.current = alert
        self.say(format_alert(alert, path))

    async def show_cancel(self, cancel: AlertCancelMessage) -> None:
        self.say(f"\n-- STAND DOWN from {cancel.alert_id} ({cancel.incident_id}): {cancel.reason}")
        if self.current and self.current.alert_id == cancel.alert_id:
            self.current = None
            self.status = "available"

    async def key(self, ch: str) -> bool:
        """Act on one key; False to quit."""
        ch = ch.lower()
        if ch == "q":
            return False
        actions = {"a": "accept", "d": "decline", "r": "arrived", "x": "resolved"}
        if ch not in actions:
            if ch.strip():
                self.say("keys: a accept, d decline, r arrived, x resolved, q quit")
            return True
        if self.current is None:
            self.say("no open alert")
            return True
        action = actions[ch]
        alert = self.current
        await self.client.ack(alert.alert_id, action)
        self.say(f"-> {action} {alert.alert_id}" + ("" if self.client.session.connected.is_set()
                                                     else " (offline: will send on reconnect)"))
        if action == "accept":
            self.status = "busy"
        if action in ("decline", "resolved"):
            self.current = None
            self.status = "available"
            opened = [a for a in self.client.store.open_alerts() if a.alert_id != alert.alert_id]
            if opened:
                self.current = opened[-1]
                self.say(f"open alert: {self.current.alert_id}")
        return True

    async def location_loop(self) -> None:
        i = 0
        while True:
            if self.gps:
                self.lat, self.lon = self.gps.points[i % len(self.gps.points)]
                i += 1
            elif self.simulate and self.current and self.status == "busy":
                inc = self.current.incident
                d = distance_m(self.lat, self.lon, inc.lat, inc.lon)
                if d > 1:
                    self.lat, self.lon = destination(self.lat, self.lon, bearing_deg(self.lat, self.lon, inc.lat, inc.lon),
                                                     min(d, self.speed_m_s))
            self.client.publish_location(self.lat, self.lon, status=self.status)
            await asyncio.sleep(1.0)

    async def key_loop(self) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str] = asyncio.Queue()
        fd = sys.stdin.fileno()
        restore = None
        if sys.stdin.isatty():
            import termios
            import tty

            restore = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        loop.add_reader(fd, lambda: queue.put_nowait(os.read(fd, 64).decode(errors="replace") or "q"))
        try:
            while True:
                chunk = await queue.get()
                for ch in chunk:
                    if not await self.key(ch):
                        return
        finally:
            loop.remove_reader(fd)
            if restore is not None:
                import termios

                termios.tcsetattr(fd, termios.TCSADRAIN, restore)

    async def run(self) -> None:
        await self.client.start()
        self.say(f"unit {self.client.unit_id}: connecting to {self.client.session.broker.url} ...")
        try:
            await self.client.session.wait_connected(self.client.session.broker.connect_timeout_s * 3)
            self.say("connected; waiting for alerts")
        except DispatchError as exc:
            self.say(f"{exc}; will keep trying")
        for alert in self.client.store.open_alerts():  # re-list what was open before a restart
            self.current = alert
            self.say(f"still open from before: {alert.alert_id} ({alert.incident.kind.value} at "
                     f"{alert.incident.lat:.5f},{alert.incident.lon:.5f}), state {self.client.store.state(alert.alert_id)}")
        locator = asyncio.create_task(self.location_loop())
        try:
            await self.key_loop()
        finally:
            locator.cancel()
            await self.client.stop()

