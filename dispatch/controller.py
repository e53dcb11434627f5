"""The Dispatcher: incidents in, the best motorcycle unit alerted, acks followed to the end.

Consumes {prefix}/detections/#, {prefix}/alarms/+ and the unit topics; publishes alerts, events, retained incident
state, escalations, retained drone state and its own retained status (Last Will = offline).
Every state change is journaled (SQLite) together with the messages announcing it before any of
them is published (see journal.py); inbound QoS 1 messages are PUBACKed only after that commit.

Its parts, one module each: the incident lifecycle (lifecycle.py), alerting units and following
their answers (alerting.py), the operator's hand (operator_hand.py); an incident as handled is a
`Case` (cases.py). This module is the service: MQTT in, the outbox out, the timers.

Hooks for the run loop (no flight/ imports here):
    dispatcher.on_overwatch_needed = async fn(incident)          # keep a drone over it
    dispatcher.on_release = async fn(incident, reason)           # unit arrived / closed
    dispatcher.locate_grid = fn(grid_id) -> (lat, lon) | None      # place alarms given by grid cell
    dispatcher.update_drone_state(pose, mode=..., battery_pct=...) # retained ≈1 Hz summary
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import aiomqtt

from common.geo import distance_m
from common.values import Incident, IncidentEvent, Pose
from dispatch.alerting import AlertFlow, OpenAlert
from dispatch.assign import EtaModel, StraightLineEta
from dispatch.cases import Case
from dispatch.config import BrokerConfig, DispatchConfig
from dispatch.errors import DispatchError, JournalError, PayloadError
from dispatch.journal import OPEN_ALERTS, AlertStatus, Journal, OutboxRow
from dispatch.lifecycle import IncidentLifecycle
from dispatch.mqtt import Backoff, LastWill, MqttSession
from dispatch.operator_hand import OperatorHand
from dispatch.registry import RiderUnit, UnitRegistry
from dispatch.schemas import (HOLDING, AckMessage, AlarmMessage, ControllerStatusMessage, DispatchStatus,
                              DetectionMessage, DroneStateMessage, LocationMessage, PresenceMessage,
                              dump, parse)
from dispatch.snapshots import fit_jpeg
from dispatch.topics import Topics, check_id

log = logging.getLogger(__name__)

OverwatchCallback = Callable[[Incident], Awaitable[None]]
ReleaseCallback = Callable[[Incident, str], Awaitable[None]]
GridLocator = Callable[[str], "tuple[float, float] | None"]

OFF_LOOP_BYTES = 64_000  # detections larger than this (a snapshot) are decoded in a thread
OUTBOX_BATCH = 500  # rows per pass; a pass ends when every topic in it is delivered or stopped


@dataclass
class DispatcherStats:
    received: int = 0
    invalid: int = 0
    locations: int = 0
    alerts_issued: int = 0
    escalations: int = 0
    last_invalid_reason: str = ""


class Dispatcher(IncidentLifecycle, AlertFlow, OperatorHand):
    """The controller's dispatch service. `await run(stop)` until stop is set."""

    def __init__(self, broker: BrokerConfig, config: DispatchConfig, *, eta: EtaModel | None = None,
                 clock: Callable[[], float] = time.time, on_overwatch_needed: OverwatchCallback | None = None,
                 on_release: ReleaseCallback | None = None):
        self.broker = broker
        self.config = config
        self.topics = Topics(config.topic_prefix)
        self.eta = eta or StraightLineEta(config.typical_speed_m_s)
        self.clock = clock
        self.on_overwatch_needed = on_overwatch_needed
        self.on_release = on_release
        self.locate_grid: GridLocator | None = None
        self.journal = Journal(config.journal_path)
        self.registry = UnitRegistry(config.unit_silence_s, clock)
        self.cases: dict[str, Case] = {}
        self._linked_to: dict[str, str] = {}  # report id -> id of the open incident it was folded into
        self.stats = DispatcherStats()
        self._alerts: dict[str, OpenAlert] = {}
        self._drone_states: dict[str, DroneStateMessage] = {}
        self._drone_dirty: set[str] = set()
        self._drone_published_at: dict[str, float] = {}
        self._units_dirty: set[str] = set()
        self._callback_tasks: set[asyncio.Task] = set()
        self._wake: asyncio.Event | None = None
        self._connected_at = 0.0
        self.ready = asyncio.Event()
        t = self.topics
        offline = dump(ControllerStatusMessage(state="offline", client_id=broker.username or config.client_id))
        self.session = MqttSession(
            broker, client_id=config.client_id, persistent=True,
            will=LastWill(t.controller_status, offline, qos=1, retain=True),
            subscriptions=[(t.detections_all, 1), (t.alarms_all, 1), (t.unit_acks_all, 1), (t.unit_status_all, 1),
                           (t.unit_locations_all, 0)],
            manual_ack=True, on_connect=self._on_connect, name="dispatcher")

    # ------------------------------------------------------------------ service life
    async def run(self, stop: asyncio.Event) -> None:
        self._wake = asyncio.Event()
        self._restore()
        self.ready.set()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.session.run(self._handle, stop), name="dispatcher-mqtt")
                tg.create_task(self._publisher(stop), name="dispatcher-outbox")
                tg.create_task(self._ticker(stop), name="dispatcher-tick")
        except* JournalError as group:
            log.critical("dispatcher stopping: %s", group.exceptions[0])
            raise group.exceptions[0] from None
        finally:
            self._save_units()
            self.journal.close()

    async def _on_connect(self) -> None:
        self._connected_at = self.clock()
        await self.session.publish(self.topics.controller_status, dump(self.status_message()), qos=1, retain=True)
        self._wake_publisher()

    def status_message(self) -> ControllerStatusMessage:
        s = self.stats
        return ControllerStatusMessage(
            state="online", client_id=self.session.client_id, ts=self.clock(), open_incidents=len(self.cases),
            units_known=len(self.registry), messages_received=s.received, locations_ingested=s.locations,
            payloads_rejected=s.invalid, alerts_issued=s.alerts_issued)

    async def publish_offline(self) -> None:
        """Clean shutdown: say so (the Last Will covers the unclean one)."""
        status = ControllerStatusMessage(state="offline", client_id=self.session.client_id, ts=self.clock())
        try:
            await self.session.publish(self.topics.controller_status, dump(status), qos=1, retain=True)
        except DispatchError as exc:
            log.warning("could not publish offline status: %s", exc)

    def _restore(self) -> None:
        """Rebuild state from the journal after a restart and queue the alerts still unanswered."""
        for unit_id, lat, lon, last_seen, status in self.journal.units():
            self.registry.restore(RiderUnit(unit_id, lat, lon, last_seen, status=status))
        for record, snapshot in self.journal.open_incidents():
            case = Case.from_record(record, snapshot)
            self.cases[case.incident.id] = case
            self._linked_to.update(dict.fromkeys(case.linked, case.incident.id))
        for row in self.journal.alerts(OPEN_ALERTS):
            self._alerts[row.alert_id] = OpenAlert(row.incident_id, row.unit_id)
            case = self.cases.get(row.incident_id)
            if case is None or case.alert_id != row.alert_id:
                continue
            self.registry.assign(row.unit_id, case.incident.id)
            if row.status == AlertStatus.ISSUED and case.status == DispatchStatus.ALERTING:
                case.alert_expires_at = row.expires_at
                with self.journal.transaction():  # replay: same alert_id, riders drop the duplicate
                    self.journal.enqueue(self.topics.unit_alerts(row.unit_id), row.message, qos=1)
                log.info("replaying unacknowledged alert %s to %s", row.alert_id, row.unit_id)
        if self.cases:
            log.info("restored %d open incident(s), %d open alert(s) from %s", len(self.cases), len(self._alerts),
                     self.journal.path)
        for case in self.cases.values():
            if case.status in HOLDING:
                self._callback(self.on_overwatch_needed, case.incident)

    # ------------------------------------------------------------------ inbound
    async def _handle(self, message: aiomqtt.Message) -> None:
        self.stats.received += 1
        topic = message.topic.value
        payload = message.payload
        levels = self.topics.parse(topic)
        try:
            if not isinstance(payload, (bytes, bytearray)):
                payload = str(payload).encode()
            if levels[:1] == ("units",) and len(levels) == 3:
                unit_id = levels[1]
                if levels[2] == "location":
                    self._on_location(check_id(unit_id, "unit id"), parse(LocationMessage, payload, topic))
                elif levels[2] == "acks":
                    self._on_ack(check_id(unit_id, "unit id"), parse(AckMessage, payload, topic))
                elif levels[2] == "status":
                    if payload:  # an empty retained payload only clears the topic
                        self._on_presence(check_id(unit_id, "unit id"), parse(PresenceMessage, payload, topic))
            elif levels[:1] == ("detections",) and len(levels) == 2:
                drone_id = check_id(levels[1], "drone id")
                if self.config.drones and drone_id not in self.config.drones:
                    raise PayloadError(f"detection from unknown drone {drone_id!r} (this controller takes "
                                       f"detections from {', '.join(self.config.drones)})")
                if len(payload) > OFF_LOOP_BYTES:
                    # Up to 4 MB of JSON, base64 and JPEG re-encoding: done in a thread, so locations,
                    # acks and the outbox keep flowing meanwhile (messages are still handled in order).
                    event = await asyncio.to_thread(self._detection_event, drone_id, payload, topic)
                else:
                    event = self._detection_event(drone_id, payload, topic)
                self.submit(event)
            elif levels[:1] == ("alarms",) and len(levels) == 2:
                source = check_id(levels[1], "alarm source")
                self.submit_alarm(parse(AlarmMessage, payload, topic).to_alarm(source))
            else:
                log.debug("ignoring message on %s", topic)
        except JournalError:
            raise
        except DispatchError as exc:  # PayloadError included: log the reason, drop, carry on
            self.stats.invalid += 1
            self.stats.last_invalid_reason = str(exc)
            log.warning("dropped message on %s: %s", topic, exc)
        if self.journal.outbox_dirty:  # most messages (locations) change nothing worth publishing
            self._wake_publisher()

    def _on_presence(self, unit_id: str, msg: PresenceMessage) -> None:
        # A lost link is normal on a motorcycle: the unit stays assignable (its persistent session
        # queues the alert) until unit_silence_s; only signing off takes it out at once.
        if msg.state == "online" or msg.reason == "signed_off":
            self.registry.set_presence(unit_id, msg.state == "online")

    def _on_location(self, unit_id: str, msg: LocationMessage) -> None:
        self.stats.locations += 1
        unit = self.registry.update_location(
            unit_id, msg.lat, msg.lon, float(msg.tst), msg.status,
            speed_m_s=msg.vel / 3.6 if msg.vel is not None else None, heading_deg=msg.cog, battery_pct=msg.batt)
        self._units_dirty.add(unit_id)
        if unit.incident_ids:  # only units with work can have arrived somewhere
            now = self.clock()
            for incident_id in list(unit.incident_ids):
                case = self.cases.get(incident_id)
                if case and case.unit_id == unit_id and case.status == DispatchStatus.ACCEPTED and case.located and \
                        distance_m(msg.lat, msg.lon, case.incident.lat, case.incident.lon) <= self.config.arrive_radius_m:
                    log.info("unit %s is within %.0f m of %s: arrived", unit_id, self.config.arrive_radius_m, incident_id)
                    self._arrive(case, now, "unit within arrive radius")

    def _detection_event(self, drone_id: str, payload: bytes, topic: str) -> IncidentEvent:
        """A detection message as an IncidentEvent, its snapshot already fitted to the alert cap."""
        msg = parse(DetectionMessage, payload, topic)
        incident = msg.incident
        if incident.drone_id and incident.drone_id != drone_id:
            raise PayloadError(f"detection on drone {drone_id}'s topic names drone {incident.drone_id!r}")
        snapshot = fit_jpeg(msg.snapshot_bytes(), self.config.snapshot_max_bytes)
        return IncidentEvent(msg.state, replace(incident.to_incident(snapshot), drone_id=incident.drone_id or drone_id))

    # ------------------------------------------------------------------ drones
    def update_drone_state(self, pose: Pose, mode: str = "", battery_pct: float | None = None) -> None:
        """Feed a drone's latest pose; published retained at most every drone_state_interval_s."""
        drone_id = check_id(pose.drone_id, "drone id")
        overwatch = next((c.incident.id for c in self.cases.values()
                          if c.incident.drone_id == drone_id and c.status in HOLDING), None)
        self._drone_states[drone_id] = DroneStateMessage(
            drone_id=drone_id, lat=pose.lat, lon=pose.lon, alt_rel_m=pose.alt_rel_m, heading_deg=pose.heading_deg,
            groundspeed_m_s=pose.groundspeed_m_s, mode=mode, battery_pct=battery_pct,
            overwatch_incident_id=overwatch, ts=pose.time_s)
        self._drone_dirty.add(drone_id)

    def _publish_drone_states(self, now: float) -> None:
        for drone_id in list(self._drone_dirty):
            if now - self._drone_published_at.get(drone_id, 0.0) < self.config.drone_state_interval_s:
                continue
            if self.session.publish_nowait(self.topics.drone_state(drone_id), dump(self._drone_states[drone_id]),
                                           qos=0, retain=True):
                self._drone_dirty.discard(drone_id)
                self._drone_published_at[drone_id] = now

    # ------------------------------------------------------------------ background tasks
    def _wake_publisher(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _publisher(self, stop: asyncio.Event) -> None:
        """Drain the outbox in order per topic; rows leave the journal only once the broker PUBACKed them.

        Within one topic a message is sent only after the one before it was acknowledged, and a
        failure stops that topic there: the failed row and everything after it are retried, in
        order, after a back-off. Otherwise a retried row would overtake its successors (a stale
        retained incident state; an alert reaching a rider after its cancel, which the rider has
        already ignored). Topics are independent, so one slow unit never holds up another.
        """
        assert self._wake is not None
        backoff = Backoff(self.broker.reconnect_min_s, self.broker.reconnect_max_s)
        while not stop.is_set():
            try:
                await asyncio.wait_for(self._wake.wait(), 0.5)
            except TimeoutError:
                pass
            self._wake.clear()
            if not self.session.connected.is_set() or not self.journal.outbox_dirty:
                continue
            self.journal.outbox_dirty = False
            rows = self.journal.pending(OUTBOX_BATCH)
            if not rows:
                continue
            by_topic: dict[str, list[OutboxRow]] = {}
            for row in rows:
                by_topic.setdefault(row.topic, []).append(row)
            delivered: list[int] = []
            failures = [f for f in await asyncio.gather(*(self._publish_in_order(rs, delivered)
                                                          for rs in by_topic.values())) if f is not None]
            with self.journal.transaction():
                self.journal.mark_published(delivered)
            if failures or len(rows) == OUTBOX_BATCH:
                self.journal.outbox_dirty = True
                self._wake.set()
            if failures:
                delay_s = backoff.next()
                log.warning("outbox: %d topic(s) stopped at a failed publish (%s); retrying in order in %.1f s",
                            len(failures), failures[0], delay_s)
                try:
                    await asyncio.wait_for(stop.wait(), delay_s)
                except TimeoutError:
                    pass
            else:
                backoff.reset()

    async def _publish_in_order(self, rows: list[OutboxRow], delivered: list[int]) -> DispatchError | None:
        """Publish one topic's rows one after another; stop at the first failure and return it."""
        for row in rows:
            try:
                await self.session.publish(row.topic, row.payload, row.qos, row.retain)
            except DispatchError as exc:
                return exc
            delivered.append(row.seq)
        return None

    async def _ticker(self, stop: asyncio.Event) -> None:
        last_units_save = last_status = last_clear = self.clock()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 0.2)
            except TimeoutError:
                pass
            now = self.clock()
            try:
                self._expire_alerts(now)
                self._try_assign(now)
                self._publish_drone_states(now)
                if now - last_units_save >= 2.0:
                    self._save_units()
                    last_units_save = now
                if now - last_clear >= min(10.0, max(0.2, self.config.closed_retain_s / 2)):
                    self._clear_closed_retained(now)
                    last_clear = now
                if now - last_status >= self.config.status_interval_s:
                    self.session.publish_nowait(self.topics.controller_status, dump(self.status_message()),
                                                qos=1, retain=True)
                    last_status = now
            except JournalError:
                raise
            except DispatchError as exc:
                log.error("dispatch tick failed: %s", exc)
            self._wake_publisher()

    def _clear_closed_retained(self, now: float) -> None:
        """Remove long-closed incidents from the broker's retained store (the journal keeps them)."""
        ids = self.journal.closed_to_clear(now - self.config.closed_retain_s)
        if ids:
            with self.journal.transaction():
                for incident_id in ids:
                    self.journal.enqueue(self.topics.incident(incident_id), b"", qos=1, retain=True)
                    self.journal.mark_retained_cleared(incident_id)
            self._wake_publisher()

    def _save_units(self) -> None:
        if not self._units_dirty:
            return
        rows = []
        for unit_id in self._units_dirty:
            u = self.registry.get(unit_id)
            if u is not None:
                rows.append((u.unit_id, u.lat, u.lon, u.last_seen_s, u.status))
        self._units_dirty.clear()
        try:
            self.journal.save_units(rows)
        except Exception as exc:  # positions are lost on a restart: say so loudly
            log.error("could not save %d unit position(s) to the journal: %s", len(rows), exc)

    def _callback(self, fn, *args) -> None:
        if fn is None:
            return

        async def call() -> None:
            try:
                await fn(*args)
            except Exception:
                log.exception("dispatch hook %s failed", getattr(fn, "__name__", fn))

        task = asyncio.get_running_loop().create_task(call())
        self._callback_tasks.add(task)
        task.add_done_callback(self._callback_tasks.discard)

