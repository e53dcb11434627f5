"""Incident lifecycle: vision reports and alarms open incidents, update them, fold second sightings
into the open one, and close them (gone, resolved, a false alarm); every change journaled.

A part of `Dispatcher` (dispatch/controller.py), which provides the state it works on (cases,
journal, registry, config, clock) and the alerting it starts (`_try_assign`, `_cancel_alert`).
"""
from __future__ import annotations

import logging
from dataclasses import replace

from common.geo import distance_m
from common.values import Alarm, Incident, IncidentEvent, IncidentKind, IncidentState
from dispatch.assign import priority_of
from dispatch.cases import Case
from dispatch.errors import PayloadError
from dispatch.journal import AlertStatus
from dispatch.schemas import (HOLDING, NOT_TAKEN, WAITING, AlarmRef, DispatchStatus, EventMessage, IncidentRecord,
                              dump)
from dispatch.snapshots import fit_jpeg
from dispatch.topics import check_id

# The dispatcher's one log (operators filter on it): the same logger name in all its modules.
log = logging.getLogger("dispatch.controller")


class IncidentLifecycle:
    """Opening, updating, linking and closing incidents (a mixin of `Dispatcher`)."""

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
        case.incident = replace(incident, snapshot_jpeg=None, first_seen_s=case.incident.first_seen_s,
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
        case = Case(incident=replace(incident, snapshot_jpeg=None), snapshot=snapshot, status=DispatchStatus.PENDING,
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

    def _record_change(self, case: Case, before: IncidentRecord | None, kind: IncidentState,
                       snapshot: bytes | None = None) -> None:
        """Inside a transaction: journal the record, enqueue the event and the retained state."""
        after = case.record()
        self.journal.put_incident(after, snapshot or case.snapshot)
        self.journal.enqueue(self.topics.events, dump(EventMessage(type=kind, before=before, after=after)), qos=1)
        self.journal.enqueue(self.topics.incident(case.incident.id), dump(after), qos=1, retain=True)
