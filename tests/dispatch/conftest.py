"""Helpers for dispatch tests: an in-process Dispatcher, real RiderClients, a topic probe.

All against the real mosquitto from tests/fixtures/broker.py (fixture `mosquitto_broker`).
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import pytest

from common.geo import offset
from common.values import Incident, IncidentEvent, IncidentKind, IncidentState
from dispatch.config import BrokerConfig, DispatchConfig
from dispatch.controller import Dispatcher
from dispatch.publisher import DetectionPublisher
from dispatch.rider import RiderClient, RiderStore
from dispatch.schemas import AlertCancelMessage, AlertMessage

ORIGIN = (32.0, 119.58)  # Danyang


async def wait_until(predicate, timeout_s: float, what: str, poll_s: float = 0.02):
    """Block until predicate() is truthy; fail naming `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(poll_s)


def make_incident(incident_id: str, kind: IncidentKind = IncidentKind.FIRE, north_m: float = 0.0,
                  east_m: float = 0.0, drone_id: str = "D1", snapshot: bytes | None = None) -> Incident:
    lat, lon = offset(*ORIGIN, north_m, east_m)
    now = time.time()
    return Incident(id=incident_id, kind=kind, confidence=0.9, first_seen_s=now, last_seen_s=now, lat=lat, lon=lon,
                    error_m=4.0, drone_id=drone_id, grid_id="G-101", snapshot_jpeg=snapshot)


@dataclass
class Unit:
    """A RiderClient that records what it was shown and answers from the test."""

    client: RiderClient
    north_m: float
    east_m: float
    shown: list[AlertMessage] = field(default_factory=list)
    auto_answer: bool = False  # accept at once, then resolve after `on_scene_s`
    on_scene_s: float = 0.2
    accept_delay_s: float = 0.0
    cancelled: list[AlertCancelMessage] = field(default_factory=list)

    @property
    def unit_id(self) -> str:
        return self.client.unit_id

    def send_location(self, status: str = "available") -> None:
        lat, lon = offset(*ORIGIN, self.north_m, self.east_m)
        self.client.publish_location(lat, lon, status=status)

    def get_shown_ids(self) -> list[str]:
        return [a.alert_id for a in self.shown]


class Probe:
    """A plain subscriber that records every message on some topics (JSON decoded when possible)."""

    def __init__(self, url_host: str, port: int, topics: list[str]):
        self.host, self.port, self.topics = url_host, port, topics
        self.messages: list[tuple[str, object, bool]] = []
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        async def run() -> None:
            async with aiomqtt.Client(self.host, self.port, protocol=aiomqtt.ProtocolVersion.V5) as client:
                for t in self.topics:
                    await client.subscribe(t, 1)
                self._ready.set()
                async for m in client.messages:
                    try:
                        body = json.loads(m.payload) if m.payload else None
                    except ValueError:
                        body = m.payload
                    self.messages.append((m.topic.value, body, m.retain))

        self._task = asyncio.create_task(run())
        await asyncio.wait_for(self._ready.wait(), 5)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, aiomqtt.MqttError):
                pass

    def get_bodies(self, suffix: str) -> list:
        return [b for t, b, _ in self.messages if t.endswith(suffix)]


class DispatchRig:
    """A Dispatcher, units and a detection publisher around one mosquitto, torn down in reverse."""

    def __init__(self, broker, tmp_path: Path):
        self.mosquitto = broker
        self.tmp_path = tmp_path
        self.broker_config = BrokerConfig(url=broker.url, connect_timeout_s=2, operation_timeout_s=2,
                                          reconnect_min_s=0.1, reconnect_max_s=0.5, keepalive_s=5)
        self.units: dict[str, Unit] = {}
        self.dispatcher: Dispatcher | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.publisher: DetectionPublisher | None = None
        self.probes: list[Probe] = []
        self.released: list[tuple[str, str]] = []
        self.overwatch: list[str] = []
        self._tasks: set[asyncio.Task] = set()

    def dispatch_config(self, **overrides) -> DispatchConfig:
        values = dict(journal_path=self.tmp_path / "journal.sqlite", ack_timeout_s=1.5, unit_silence_s=10,
                      escalation_retry_s=1.0, arrive_radius_m=40)
        values.update(overrides)
        return DispatchConfig(**values)

    async def start_dispatcher(self, **overrides) -> Dispatcher:
        async def on_overwatch(incident):
            self.overwatch.append(incident.id)

        async def on_release(incident, reason):
            self.released.append((incident.id, reason))

        self.dispatcher = Dispatcher(self.broker_config, self.dispatch_config(**overrides),
                                     on_overwatch_needed=on_overwatch, on_release=on_release)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.dispatcher.run(self._stop))
        await self.dispatcher.session.wait_connected(5)
        return self.dispatcher

    async def stop_dispatcher(self) -> None:
        if self._task:
            self._stop.set()
            await asyncio.wait_for(self._task, 10)
            self._task = None

    async def add_unit(self, unit_id: str, north_m: float, east_m: float, send_location: bool = True,
                       auto_answer: bool = False) -> Unit:
        store = RiderStore(self.tmp_path / f"rider-{unit_id}.sqlite")
        unit = Unit(RiderClient(self.broker_config, unit_id, store), north_m, east_m, auto_answer=auto_answer)

        async def answer(alert):
            await asyncio.sleep(unit.accept_delay_s)
            await unit.client.ack(alert.alert_id, "accept")
            await asyncio.sleep(unit.on_scene_s)
            await unit.client.ack(alert.alert_id, "resolved")

        async def on_alert(alert):
            unit.shown.append(alert)
            if unit.auto_answer:
                task = asyncio.get_running_loop().create_task(answer(alert))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        async def on_cancel(cancel):
            unit.cancelled.append(cancel)

        unit.client.on_alert, unit.client.on_cancel = on_alert, on_cancel
        await unit.client.start(wait_s=5)
        self.units[unit_id] = unit
        if send_location:
            unit.send_location()
        return unit

    async def wait_units_known(self, *unit_ids: str, timeout_s: float = 5) -> None:
        await wait_until(lambda: all(u in self.dispatcher.registry for u in unit_ids), timeout_s,
                         f"dispatcher to know units {unit_ids}")

    async def publish(self, incident: Incident, state: IncidentState = IncidentState.NEW) -> None:
        if self.publisher is None:
            self.publisher = DetectionPublisher(self.broker_config)
            await self.publisher.__aenter__()
        await self.publisher.publish(IncidentEvent(state, incident))

    async def probe(self, *topics: str) -> Probe:
        p = Probe(self.mosquitto.host, self.mosquitto.port, list(topics))
        await p.start()
        self.probes.append(p)
        return p

    def get_case_status(self, incident_id: str) -> str | None:
        case = self.dispatcher.cases.get(incident_id)
        return case.status if case else None

    def get_shown_incident_ids(self) -> list[str]:
        return [a.incident.id for u in self.units.values() for a in u.shown]

    def assert_each_incident_shown_once(self, incident_ids: list[str]) -> None:
        """Every incident reached exactly one unit, exactly once (no loss, no double showing)."""
        shown = sorted(self.get_shown_incident_ids())
        assert shown == sorted(incident_ids), (
            f"missing {sorted(set(incident_ids) - set(shown))}, "
            f"twice {sorted({i for i in shown if shown.count(i) > 1})}")

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        for p in self.probes:
            await p.stop()
        if self.publisher:
            await self.publisher.close()
        for unit in self.units.values():
            await unit.client.stop()
            unit.client.store.close()
        await self.stop_dispatcher()


@pytest.fixture
async def rig(mosquitto_broker, tmp_path):
    """A dispatch rig on a fresh mosquitto; ack timeout 1.5 s, escalation retry 1 s."""
    r = DispatchRig(mosquitto_broker, tmp_path)
    try:
        yield r
    finally:
        await r.close()
