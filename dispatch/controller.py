"""The Dispatcher: incidents in, the best motorcycle unit alerted, acks followed to the end.

Consumes {prefix}/detections/#, {prefix}/alarms/+ and the unit topics; publishes alerts, events, retained incident
state, escalations, retained drone state and its own retained status (Last Will = offline).
Every state change is journaled (SQLite) together with the messages announcing it before any of
them is published (see journal.py); inbound QoS 1 messages are PUBACKed only after that commit.

Hooks for the run loop (no flight/ imports here):
    dispatcher.on_overwatch_needed = async fn(incident)          # keep a drone over it
    dispatcher.on_release = async fn(incident, reason)           # unit arrived / closed
    dispatcher.locate_grid = fn(grid_id) -> (lat, lon) | None      # place alarms given by grid cell
    dispatcher.update_drone_state(pose, mode=..., battery_pct=...) # retained ≈1 Hz summary
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiomqtt

from common.geo import distance_m
from common.values import Alarm, Alert, Incident, IncidentEvent, IncidentKind, IncidentState, Pose
from dispatch.assign import Candidate, EtaModel, StraightLineEta, priority_of, rank_units
from dispatch.config import BrokerConfig, DispatchConfig
from dispatch.errors import DispatchError, JournalError, PayloadError
from dispatch.journal import OPEN_ALERTS, AlertRow, AlertStatus, Journal, OutboxRow
from dispatch.mqtt import Backoff, LastWill, MqttSession
from dispatch.registry import RiderUnit, UnitRegistry
from dispatch.schemas import (CLOSED, HOLDING, NOT_TAKEN, UNIT_ALERTED, UNIT_HOLDS, WAITING, AckMessage, AlarmMessage,
                              AlarmRef, AlertCancelMessage, AlertMessage, ControllerStatusMessage, DispatchStatus,
                              DetectionMessage, DroneStateMessage, EscalationMessage, EventMessage,
                              IncidentPayload, IncidentRecord, LocationMessage, PresenceMessage, dump, parse)
from dispatch.snapshots import fit_jpeg
from dispatch.topics import Topics, check_id

log = logging.getLogger(__name__)

OverwatchCallback = Callable[[Incident], Awaitable[None]]
ReleaseCallback = Callable[[Incident, str], Awaitable[None]]
GridLocator = Callable[[str], "tuple[float, float] | None"]

# After (re)connecting, answers queued for us by the broker arrive first; give them this long before
# an alert may time out, so a controller or broker outage never counts against a unit.
EXPIRY_GRACE_S = 1.0
OFF_LOOP_BYTES = 64_000  # detections larger than this (a snapshot) are decoded in a thread
OUTBOX_BATCH = 500  # rows per pass; a pass ends when every topic in it is delivered or stopped


@dataclass
class Case:
    """One incident being handled; `record()` is what goes to the journal and the retained topic."""

    incident: Incident
    snapshot: bytes | None
    status: DispatchStatus
    priority: int
    opened_at: float
    updated_at: float
    unit_id: str | None = None
    alert_id: str | None = None
    alert_expires_at: float = 0.0
    attempts: int = 0
    escalations: int = 0
    next_escalation_at: float = 0.0
    declined_by: set[str] = field(default_factory=set)
    timed_out: set[str] = field(default_factory=set)
    vision_state: IncidentState = IncidentState.NEW
    linked: dict[str, IncidentState] = field(default_factory=dict)  # other reports of this incident
    alarm: AlarmRef | None = None  # a `reported` incident: the alarm it came from

    @property
    def closed(self) -> bool:
        return self.status in CLOSED

    @property
    def unconfirmed(self) -> bool:
        """A reported alarm no vision report has been linked to yet."""
        return self.incident.kind == IncidentKind.REPORTED and not self.linked

    @property
    def located(self) -> bool:
        return self.incident.lat is not None and self.incident.lon is not None

    @property
    def seen_by_nobody(self) -> bool:
        """Every report of it (its own and those linked to it) says it is gone."""
        return self.vision_state == IncidentState.END and all(s == IncidentState.END for s in self.linked.values())

    def record(self) -> IncidentRecord:
        return IncidentRecord(incident=IncidentPayload.of(self.incident), status=self.status, priority=self.priority,
                              unit_id=self.unit_id, alert_id=self.alert_id, attempts=self.attempts,
                              escalations=self.escalations, declined_by=tuple(sorted(self.declined_by)),
                              timed_out=tuple(sorted(self.timed_out)), vision_state=self.vision_state,
                              linked_reports=dict(self.linked), alarm=self.alarm, opened_at=self.opened_at,
                              updated_at=self.updated_at, closed=self.closed)

    @classmethod
    def from_record(cls, rec: IncidentRecord, snapshot: bytes | None) -> "Case":
        return cls(incident=rec.incident.to_incident(), snapshot=snapshot, status=rec.status, priority=rec.priority,
                   opened_at=rec.opened_at, updated_at=rec.updated_at, unit_id=rec.unit_id, alert_id=rec.alert_id,
                   attempts=rec.attempts, escalations=rec.escalations, declined_by=set(rec.declined_by),
                   timed_out=set(rec.timed_out), vision_state=rec.vision_state, linked=dict(rec.linked_reports),
                   alarm=rec.alarm)


@dataclass
class _OpenAlert:
    """An alert whose unit may still answer: which incident, which unit."""

    incident_id: str
    unit_id: str


@dataclass
class DispatcherStats:
    received: int = 0
    invalid: int = 0
    locations: int = 0
    alerts_issued: int = 0
    escalations: int = 0
    last_invalid_reason: str = ""


class Dispatcher:
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
        self._alerts: dict[str, _OpenAlert] = {}
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
        for raw, snapshot in self.journal.open_incidents():
            case = Case.from_record(IncidentRecord.model_validate(raw), snapshot)
            self.cases[case.incident.id] = case
            self._linked_to.update(dict.fromkeys(case.linked, case.incident.id))
        for row in self.journal.alerts(OPEN_ALERTS):
            self._alerts[row.alert_id] = _OpenAlert(row.incident_id, row.unit_id)
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
        return IncidentEvent(msg.state, _replace(incident.to_incident(snapshot), drone_id=incident.drone_id or drone_id))

    def submit(self, event: IncidentEvent) -> None:
        """Take one vision event (from MQTT or straight from an in-process vision pipeline)."""
        now = self.clock()
        incident = event.incident
        check_id(incident.id, "incident id")
        case = self.cases.get(incident.id)
        if case is None:
            primary = self.cases.get(self._linked_to.get(incident.id, ""))
            if primary is not None:
                self._linked_report(primary, incident.id, event.state, now)
                return
            if self.journal.incident_exists(incident.id) or self.journal.linked_incident(incident.id):
                log.debug("detection for closed incident %s ignored", incident.id)
                return
            if event.state == IncidentState.END:
                log.info("incident %s ended before we saw it open; recorded only", incident.id)
            elif (primary := self._same_incident(incident)) is not None:
                self._link(primary, incident, event.state, now)
                return
            self._open(incident, event.state, now)
            return
        before = case.record()
        snapshot = fit_jpeg(incident.snapshot_jpeg, self.config.snapshot_max_bytes) if incident.snapshot_jpeg else None
        moved_m = 0.0
        if incident.lat is not None and incident.lon is not None:
            if case.located:
                moved_m = distance_m(case.incident.lat, case.incident.lon, incident.lat, incident.lon)
            else:
                moved_m = float("inf")
        case.incident = _replace(incident, snapshot_jpeg=None, first_seen_s=case.incident.first_seen_s,
                                 lat=incident.lat if incident.lat is not None else case.incident.lat,
                                 lon=incident.lon if incident.lon is not None else case.incident.lon,
                                 error_m=incident.error_m if incident.lat is not None else case.incident.error_m)
        if snapshot:
            case.snapshot = snapshot
        changed = moved_m >= 5.0 or event.state != case.vision_state or priority_of(incident) != case.priority
        case.priority = priority_of(incident)  # smoke seen to become fire, say
        case.vision_state = event.state
        if case.status == DispatchStatus.UNLOCATED and case.located:
            case.status = DispatchStatus.PENDING
            changed = True
        if case.seen_by_nobody and case.status in NOT_TAKEN:
            # Gone before anyone took it (a car drove off): stand the unit down, free the drone.
            self._close(case, DispatchStatus.ENDED, now, before, reason="incident ended before a unit accepted")
            return
        if changed:
            case.updated_at = now
            with self.journal.transaction():
                self._record_change(case, before, IncidentState.UPDATE, snapshot=snapshot)
        if case.status in WAITING:
            self._try_assign(now)

    def submit_alarm(self, alarm: Alarm) -> tuple[str, bool]:
        """Open a `reported` incident for an alarm (from MQTT or the web view's webhook): a drone
        is asked to hold over it and the best unit is alerted at once, marked unconfirmed.
        Returns (incident id, opened now); the same alarm again is recorded once (False).
        PayloadError when it cannot be placed."""
        now = self.clock()
        incident_id = check_id(alarm.incident_id, "alarm source.id")
        if incident_id in self.cases or self.journal.incident_exists(incident_id):
            log.info("alarm %s again: already an incident", incident_id)
            return incident_id, False
        lat, lon = alarm.lat, alarm.lon
        if lat is None or lon is None:
            place = self.locate_grid(alarm.grid_id) if self.locate_grid and alarm.grid_id else None
            if place is None:
                raise PayloadError(f"alarm {incident_id}: grid_id {alarm.grid_id!r} is not a cell this controller "
                                   f"knows; send lat and lon")
            lat, lon = place
        incident = Incident(id=incident_id, kind=IncidentKind.REPORTED, confidence=1.0,
                            first_seen_s=alarm.ts if alarm.ts is not None else now, last_seen_s=now,
                            lat=lat, lon=lon, grid_id=alarm.grid_id)
        log.info("alarm %s (%s from %s): %s", incident_id, alarm.kind, alarm.source, alarm.text or "no text")
        self._open(incident, IncidentState.NEW, now, alarm=AlarmRef.of(alarm), priority=alarm.priority)
        return incident_id, True

    # ------------------------------------------------------------------ the operator's hand
    def close_false_alarm(self, incident_id: str, now: float | None = None) -> str:
        """The operator closes an open incident as a false alarm: its unit is stood down (an
        alert-cancel on its alerts topic), its drone released. Returns what was done; PayloadError
        naming why when there is no such open incident."""
        case = self._open_case(incident_id)
        unit = case.unit_id
        self._close(case, DispatchStatus.FALSE_ALARM, self.clock() if now is None else now, case.record(),
                    reason="closed by the operator as a false alarm")
        return f"{incident_id} closed as a false alarm" + (f"; {unit} stood down" if unit else "")

    def assign_unit(self, incident_id: str, unit_id: str, now: float | None = None) -> str:
        """The operator sends this unit to this incident: a unit alerted for it before is stood
        down, the chosen one alerted (busy units too: the operator decides). PayloadError naming
        why when the incident is not open or the unit cannot take an alert."""
        now = self.clock() if now is None else now
        case = self._open_case(incident_id)
        unit = self.registry.get(unit_id)
        if unit is None:
            known = ", ".join(sorted(u.unit_id for u in self.registry.all())) or "none"
            raise PayloadError(f"no unit {unit_id!r} (units known: {known})")
        if not unit.online:
            raise PayloadError(f"unit {unit_id} is signed off")
        if not case.located:
            raise PayloadError(f"incident {incident_id} has no position yet")
        if case.unit_id == unit_id and case.status in UNIT_HOLDS:
            raise PayloadError(f"unit {unit_id} already has {incident_id} ({case.status})")
        (best,) = rank_units(case.incident, [unit], self.eta, self.config.load_penalty_s)
        if case.alert_id and case.unit_id:
            with self.journal.transaction():
                self._cancel_alert(case.alert_id, case.unit_id, case.incident.id, "reassigned by the operator", now)
            self._forget_alert(case.alert_id)
            self.registry.release(case.unit_id, case.incident.id)
        case.declined_by.discard(unit_id)
        case.timed_out.discard(unit_id)
        self._issue_alert(case, best, now)
        return f"{unit_id} alerted for {incident_id} ({best.distance_m:.0f} m, ETA {best.eta_s:.0f} s)"

    def _open_case(self, incident_id: str) -> Case:
        case = self.cases.get(incident_id)
        if case is not None and not case.closed:
            return case
        if self.journal.incident_exists(incident_id) or self.journal.linked_incident(incident_id):
            raise PayloadError(f"incident {incident_id} is already closed")
        raise PayloadError(f"no incident {incident_id!r}")

    def _same_incident(self, incident: Incident) -> Case | None:
        """The open incident a new report is another sighting of: same kind, within the kind's
        duplicate radius (two drones over one fire, or vision losing and re-finding it); failing
        that, an open alarm (kind `reported`) within its radius, which the report confirms."""
        if incident.lat is None or incident.lon is None or incident.confidence < self.config.min_confidence:
            return None
        for kind in (incident.kind, IncidentKind.REPORTED):
            radius_m = self.config.duplicate_radius_m.get(str(kind), 0.0)
            if radius_m <= 0:
                continue
            best, best_m = None, radius_m
            for case in self.cases.values():
                if case.incident.kind != kind or not case.located:
                    continue
                d = distance_m(case.incident.lat, case.incident.lon, incident.lat, incident.lon)
                if d <= best_m:
                    best, best_m = case, d
            if best is not None:
                return best
        return None

    def _link(self, case: Case, incident: Incident, vision_state: IncidentState, now: float) -> None:
        """Fold a new report into an open incident: no second alert, no second drone overhead."""
        before = case.record()
        case.linked[incident.id] = vision_state
        self._linked_to[incident.id] = case.incident.id
        snapshot = None
        if case.snapshot is None and incident.snapshot_jpeg:
            snapshot = case.snapshot = fit_jpeg(incident.snapshot_jpeg, self.config.snapshot_max_bytes)
        case.updated_at = now
        with self.journal.transaction():
            self.journal.link_report(incident.id, case.incident.id)
            self._record_change(case, before, IncidentState.UPDATE, snapshot=snapshot)
        log.info("report %s (%s from %s) is incident %s again, %.0f m away: linked, not dispatched twice"
                 + (" (the alarm is confirmed)" if case.incident.kind == IncidentKind.REPORTED else ""),
                 incident.id, incident.kind, incident.drone_id or "?", case.incident.id,
                 distance_m(case.incident.lat, case.incident.lon, incident.lat, incident.lon))

    def _linked_report(self, case: Case, report_id: str, vision_state: IncidentState, now: float) -> None:
        """A later detection of a linked report: it only says whether that sighting still sees it."""
        if case.linked.get(report_id) == vision_state or \
                (vision_state != IncidentState.END and case.linked.get(report_id) != IncidentState.END):
            return  # nothing changes (updates of a sighting already counted as live)
        before = case.record()
        case.linked[report_id] = vision_state
        if case.seen_by_nobody and case.status in NOT_TAKEN:
            self._close(case, DispatchStatus.ENDED, now, before, reason="incident ended before a unit accepted")
            return
        case.updated_at = now
        with self.journal.transaction():
            self._record_change(case, before, IncidentState.UPDATE)

    def _open(self, incident: Incident, vision_state: IncidentState, now: float, alarm: AlarmRef | None = None,
              priority: int | None = None) -> None:
        snapshot = fit_jpeg(incident.snapshot_jpeg, self.config.snapshot_max_bytes)
        case = Case(incident=_replace(incident, snapshot_jpeg=None), snapshot=snapshot, status=DispatchStatus.PENDING,
                    priority=priority or priority_of(incident), opened_at=now, updated_at=now,
                    vision_state=vision_state, alarm=alarm)
        if not case.located:
            case.status = DispatchStatus.UNLOCATED  # no telemetry yet: wait for an update with a position
        if vision_state == IncidentState.END:
            case.status = DispatchStatus.ENDED
        if incident.confidence < self.config.min_confidence and not case.closed:
            # Not opened yet: vision's confidence usually rises over updates, and one will open it.
            log.info("incident %s below min confidence %.2f (%.2f): not opened yet", incident.id,
                     self.config.min_confidence, incident.confidence)
            return
        with self.journal.transaction():
            self._record_change(case, None, IncidentState.NEW, snapshot=snapshot)
        if case.closed:
            return
        self.cases[incident.id] = case
        log.info("incident %s (%s, priority %d) opened at %s,%s", incident.id, incident.kind, case.priority,
                 incident.lat, incident.lon)
        self._callback(self.on_overwatch_needed, case.incident)
        if case.status == DispatchStatus.PENDING:
            self._try_assign(now)

    def _on_ack(self, unit_id: str, ack: AckMessage) -> None:
        now = self.clock()
        info = self._alerts.get(ack.alert_id)
        if info is None:
            row = self.journal.get_alert(ack.alert_id)
            if row is None:
                raise PayloadError(f"unit {unit_id}: {ack.action} for unknown alert {ack.alert_id}")
            info = _OpenAlert(row.incident_id, row.unit_id)
        if info.unit_id != unit_id:
            raise PayloadError(f"unit {unit_id} sent {ack.action} for alert {ack.alert_id} addressed to {info.unit_id}")
        case = self.cases.get(info.incident_id)
        if case is None or case.closed:
            log.info("%s from %s for closed incident %s ignored", ack.action, unit_id, info.incident_id)
            return
        current = case.alert_id == ack.alert_id
        before = case.record()
        if ack.action == "accept":
            if current and case.status == DispatchStatus.ALERTING:
                case.status, case.updated_at = DispatchStatus.ACCEPTED, now
                with self.journal.transaction():
                    self.journal.set_alert_status(ack.alert_id, AlertStatus.ACCEPTED)
                    self._record_change(case, before, IncidentState.UPDATE)
                log.info("unit %s accepted %s", unit_id, case.incident.id)
            elif current:
                log.debug("duplicate accept of %s", ack.alert_id)
            elif case.status in WAITING:
                # A late accept while nobody else holds the incident: take it, it saves time.
                case.status, case.unit_id, case.alert_id, case.updated_at = DispatchStatus.ACCEPTED, unit_id, ack.alert_id, now
                case.timed_out.discard(unit_id)
                self.registry.assign(unit_id, case.incident.id)
                self._alerts[ack.alert_id] = _OpenAlert(case.incident.id, unit_id)
                with self.journal.transaction():
                    self.journal.set_alert_status(ack.alert_id, AlertStatus.ACCEPTED)
                    self._record_change(case, before, IncidentState.UPDATE)
                log.info("unit %s accepted %s late; nobody else held it, assigned", unit_id, case.incident.id)
            else:
                with self.journal.transaction():
                    self._cancel_alert(ack.alert_id, unit_id, case.incident.id, "reassigned to another unit", now)
        elif ack.action == "decline":
            if current and case.status in UNIT_ALERTED:
                self._forget_alert(ack.alert_id)
                self.registry.release(unit_id, case.incident.id)
                case.declined_by.add(unit_id)
                case.status, case.unit_id, case.alert_id, case.updated_at = DispatchStatus.PENDING, None, None, now
                with self.journal.transaction():
                    self.journal.set_alert_status(ack.alert_id, AlertStatus.DECLINED)
                    self._record_change(case, before, IncidentState.UPDATE)
                log.info("unit %s declined %s%s", unit_id, case.incident.id, f" ({ack.reason})" if ack.reason else "")
                self._try_assign(now)
            elif unit_id not in case.declined_by:
                # A decline of an older alert (timed out, the incident moved on): the unit still
                # must not be asked again, also after a restart, so the record is journaled too.
                case.declined_by.add(unit_id)
                case.updated_at = now
                with self.journal.transaction():
                    self.journal.set_alert_status(ack.alert_id, AlertStatus.DECLINED)
                    self._record_change(case, before, IncidentState.UPDATE)
                log.info("unit %s declined its earlier alert for %s", unit_id, case.incident.id)
        elif ack.action == "arrived":
            if current and case.status in UNIT_ALERTED:
                self._arrive(case, now, "unit reported arrived")
        elif ack.action == "resolved":
            if current and case.status in UNIT_HOLDS:
                if case.status != DispatchStatus.ARRIVED:
                    self._callback(self.on_release, case.incident, DispatchStatus.RESOLVED)
                self._close(case, DispatchStatus.RESOLVED, now, before, reason="resolved by unit")

    # ------------------------------------------------------------------ state changes
    def _arrive(self, case: Case, now: float, why: str) -> None:
        before = case.record()
        case.status, case.updated_at = DispatchStatus.ARRIVED, now
        with self.journal.transaction():
            self.journal.set_alert_status(case.alert_id, AlertStatus.ARRIVED)
            self._record_change(case, before, IncidentState.UPDATE)
        log.info("unit %s arrived at %s (%s): drone released", case.unit_id, case.incident.id, why)
        self._callback(self.on_release, case.incident, DispatchStatus.ARRIVED)

    def _close(self, case: Case, status: DispatchStatus, now: float, before: IncidentRecord, reason: str) -> None:
        held_drone = case.status in HOLDING
        with self.journal.transaction():
            if case.alert_id:
                if status == DispatchStatus.RESOLVED:
                    self.journal.set_alert_status(case.alert_id, AlertStatus.RESOLVED)
                elif case.unit_id:
                    self._cancel_alert(case.alert_id, case.unit_id, case.incident.id, reason, now)
                self._forget_alert(case.alert_id)
            self.registry.release(case.unit_id, case.incident.id)
            case.status, case.updated_at = status, now
            self._record_change(case, before, IncidentState.END)
        self.cases.pop(case.incident.id, None)
        for report_id in case.linked:  # the journal keeps the links: late reports stay folded
            self._linked_to.pop(report_id, None)
        log.info("incident %s closed: %s", case.incident.id, reason)
        if held_drone and status != DispatchStatus.RESOLVED:
            self._callback(self.on_release, case.incident, status)

    def _cancel_alert(self, alert_id: str, unit_id: str, incident_id: str, reason: str, now: float) -> None:
        """Inside a transaction: tell the unit to stand down from one alert."""
        self.journal.set_alert_status(alert_id, AlertStatus.CANCELLED)
        msg = AlertCancelMessage(alert_id=alert_id, incident_id=incident_id, reason=reason, ts=now)
        self.journal.enqueue(self.topics.unit_alerts(unit_id), dump(msg), qos=1)

    def _forget_alert(self, alert_id: str | None) -> None:
        """The alert is answered for good (or stood down): acks for it are checked against the journal."""
        if alert_id is not None:
            self._alerts.pop(alert_id, None)

    def _record_change(self, case: Case, before: IncidentRecord | None, kind: IncidentState,
                       snapshot: bytes | None = None) -> None:
        """Inside a transaction: journal the record, enqueue the event and the retained state."""
        after = case.record()
        self.journal.put_incident(case.incident.id, after.model_dump(mode="json", by_alias=True), snapshot or case.snapshot,
                                  case.closed)
        self.journal.enqueue(self.topics.events, dump(EventMessage(type=kind, before=before, after=after)), qos=1)
        self.journal.enqueue(self.topics.incident(case.incident.id), dump(after), qos=1, retain=True)

    def _try_assign(self, now: float) -> None:
        """Offer units to waiting incidents, most urgent (then oldest) first."""
        waiting = sorted((c for c in self.cases.values() if c.status in WAITING and c.located),
                         key=lambda c: (c.priority, c.opened_at))
        if not waiting:
            return
        units = self.registry.assignable(self.config.max_load, now)
        for case in waiting:
            retry_due = now >= case.next_escalation_at
            if case.status == DispatchStatus.ESCALATED and retry_due and case.timed_out:
                case.timed_out.clear()  # a new round: units that missed the alert get another chance
            ranked = rank_units(case.incident, units, self.eta, self.config.load_penalty_s,
                                exclude=case.declined_by | case.timed_out)
            if ranked:
                best = ranked[0]
                self._issue_alert(case, best, now)
                if best.unit.load >= self.config.max_load:
                    units = [u for u in units if u.unit_id != best.unit.unit_id]
            elif case.status != DispatchStatus.ESCALATED or retry_due:
                self._escalate(case, now)

    def _issue_alert(self, case: Case, best: Candidate, now: float) -> None:
        before = case.record()
        case.attempts += 1
        unit_id = best.unit.unit_id
        alert_id = f"{case.incident.id}.{case.attempts}-{secrets.token_hex(3)}"
        expires_at = now + self.config.ack_timeout_s
        alert = Alert(alert_id=alert_id, unit_id=unit_id, incident=case.incident, distance_m=best.distance_m,
                      eta_s=best.eta_s, bearing_deg=best.bearing_deg, priority=case.priority,
                      issued_at_s=now, expires_at_s=expires_at, unconfirmed=case.unconfirmed,
                      text=case.alarm.text if case.alarm else None)
        message = dump(AlertMessage.of(alert, case.snapshot))
        case.status, case.unit_id, case.alert_id, case.alert_expires_at, case.updated_at = \
            DispatchStatus.ALERTING, unit_id, alert_id, expires_at, now
        self.registry.assign(unit_id, case.incident.id)
        self._alerts[alert_id] = _OpenAlert(case.incident.id, unit_id)
        with self.journal.transaction():
            self.journal.put_alert(AlertRow(alert_id, case.incident.id, unit_id, AlertStatus.ISSUED, now, expires_at, message))
            self.journal.enqueue(self.topics.unit_alerts(unit_id), message, qos=1)
            self._record_change(case, before, IncidentState.UPDATE)
        self.stats.alerts_issued += 1
        log.info("alert %s -> unit %s: %s %.0f m away, ETA %.0f s", alert_id, unit_id, case.incident.kind,
                 best.distance_m, best.eta_s)

    def _escalate(self, case: Case, now: float) -> None:
        before = case.record()
        tried = sorted(case.declined_by | case.timed_out)
        if not self.registry.all():
            reason = "no units known"
        elif tried:
            reason = f"no assignable unit left ({len(tried)} tried)"
        else:
            out = [f"{u.unit_id} {why}" for u in self.registry.all()
                   if (why := self.registry.unavailable_reason(u, self.config.max_load, now))]
            reason = "no assignable unit (" + "; ".join(out[:6]) + ("; ..." if len(out) > 6 else "") + ")"
        case.status, case.updated_at = DispatchStatus.ESCALATED, now
        case.escalations += 1
        case.next_escalation_at = now + self.config.escalation_retry_s
        msg = EscalationMessage(incident=IncidentPayload.of(case.incident), reason=reason, round=case.escalations,
                                tried_units=tuple(tried), ts=now)
        with self.journal.transaction():
            self.journal.enqueue(self.topics.escalations, dump(msg), qos=1)
            self._record_change(case, before, IncidentState.UPDATE)
        self.stats.escalations += 1
        log.warning("escalation %d for %s: %s", case.escalations, case.incident.id, reason)

    def _expire_alerts(self, now: float) -> None:
        if not self.session.connected.is_set() or now - self._connected_at < EXPIRY_GRACE_S:
            return
        for case in list(self.cases.values()):
            if case.status == DispatchStatus.ALERTING and now >= case.alert_expires_at:
                before = case.record()
                alert_id, unit_id = case.alert_id, case.unit_id
                self.registry.release(unit_id, case.incident.id)
                self._forget_alert(alert_id)
                case.timed_out.add(unit_id)
                case.status, case.unit_id, case.alert_id, case.updated_at = DispatchStatus.PENDING, None, None, now
                with self.journal.transaction():
                    # Stand the silent unit down so a late look at the screen cannot double-book.
                    self._cancel_alert(alert_id, unit_id, case.incident.id, "no answer in time; reassigned", now)
                    self.journal.set_alert_status(alert_id, AlertStatus.TIMED_OUT)  # after the cancel: timed_out, not cancelled
                    self._record_change(case, before, IncidentState.UPDATE)
                log.info("alert %s to %s timed out after %.1f s", alert_id, unit_id, self.config.ack_timeout_s)

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


def _replace(incident: Incident, **changes) -> Incident:
    from dataclasses import replace

    return replace(incident, **changes)
