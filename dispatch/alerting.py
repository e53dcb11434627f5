"""Alerting units: the best unit is alerted for each waiting incident, its answer (accept, decline,
arrived, resolved) followed, a silent one timed out and stood down, and an incident no unit can
take escalated (and retried).

A part of `Dispatcher` (dispatch/controller.py), which provides the state it works on and the
lifecycle steps it ends in (`_close`, `_record_change`).
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from common.values import Alert, IncidentState
from dispatch.assign import Candidate, rank_units
from dispatch.cases import Case
from dispatch.errors import PayloadError
from dispatch.journal import AlertRow, AlertStatus
from dispatch.schemas import (UNIT_ALERTED, UNIT_HOLDS, WAITING, AckMessage, AlertCancelMessage, AlertMessage,
                              DispatchStatus, EscalationMessage, IncidentPayload, dump)

# The dispatcher's one log (operators filter on it): the same logger name in all its modules.
log = logging.getLogger("dispatch.controller")

# After (re)connecting, answers queued for us by the broker arrive first; give them this long before
# an alert may time out, so a controller or broker outage never counts against a unit.
EXPIRY_GRACE_S = 1.0


@dataclass
class OpenAlert:
    """An alert whose unit may still answer: which incident, which unit."""

    incident_id: str
    unit_id: str


class AlertFlow:
    """Alerts, acks, time-outs and escalations (a mixin of `Dispatcher`)."""

    def _on_ack(self, unit_id: str, ack: AckMessage) -> None:
        now = self.clock()
        info = self._alerts.get(ack.alert_id)
        if info is None:
            row = self.journal.get_alert(ack.alert_id)
            if row is None:
                raise PayloadError(f"unit {unit_id}: {ack.action} for unknown alert {ack.alert_id}")
            info = OpenAlert(row.incident_id, row.unit_id)
        if info.unit_id != unit_id:
            raise PayloadError(f"unit {unit_id} sent {ack.action} for alert {ack.alert_id} addressed to {info.unit_id}")
        case = self.cases.get(info.incident_id)
        if case is None or case.closed:
            log.info("%s from %s for closed incident %s ignored", ack.action, unit_id, info.incident_id)
            return
        answer = {"accept": self._on_accept, "decline": self._on_decline, "arrived": self._on_arrived,
                  "resolved": self._on_resolved}[ack.action]
        answer(case, unit_id, ack, now)

    def _on_accept(self, case: Case, unit_id: str, ack: AckMessage, now: float) -> None:
        before = case.record()
        if case.alert_id == ack.alert_id:
            if case.status != DispatchStatus.ALERTING:
                log.debug("duplicate accept of %s", ack.alert_id)
                return
            case.status, case.updated_at = DispatchStatus.ACCEPTED, now
            with self.journal.transaction():
                self.journal.set_alert_status(ack.alert_id, AlertStatus.ACCEPTED)
                self._record_change(case, before, IncidentState.UPDATE)
            log.info("unit %s accepted %s", unit_id, case.incident.id)
        elif case.status in WAITING:
            # A late accept while nobody else holds the incident: take it, it saves time.
            case.status, case.unit_id, case.alert_id, case.updated_at = \
                DispatchStatus.ACCEPTED, unit_id, ack.alert_id, now
            case.timed_out.discard(unit_id)
            self.registry.assign(unit_id, case.incident.id)
            self._alerts[ack.alert_id] = OpenAlert(case.incident.id, unit_id)
            with self.journal.transaction():
                self.journal.set_alert_status(ack.alert_id, AlertStatus.ACCEPTED)
                self._record_change(case, before, IncidentState.UPDATE)
            log.info("unit %s accepted %s late; nobody else held it, assigned", unit_id, case.incident.id)
        else:
            with self.journal.transaction():
                self._cancel_alert(ack.alert_id, unit_id, case.incident.id, "reassigned to another unit", now)

    def _on_decline(self, case: Case, unit_id: str, ack: AckMessage, now: float) -> None:
        before = case.record()
        if case.alert_id == ack.alert_id and case.status in UNIT_ALERTED:
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

    def _on_arrived(self, case: Case, unit_id: str, ack: AckMessage, now: float) -> None:
        if case.alert_id == ack.alert_id and case.status in UNIT_ALERTED:
            self._arrive(case, now, "unit reported arrived")

    def _on_resolved(self, case: Case, unit_id: str, ack: AckMessage, now: float) -> None:
        if case.alert_id == ack.alert_id and case.status in UNIT_HOLDS:
            before = case.record()
            if case.status != DispatchStatus.ARRIVED:
                self._callback(self.on_release, case.incident, DispatchStatus.RESOLVED)
            self._close(case, DispatchStatus.RESOLVED, now, before, reason="resolved by unit")

    def _arrive(self, case: Case, now: float, why: str) -> None:
        before = case.record()
        case.status, case.updated_at = DispatchStatus.ARRIVED, now
        with self.journal.transaction():
            self.journal.set_alert_status(case.alert_id, AlertStatus.ARRIVED)
            self._record_change(case, before, IncidentState.UPDATE)
        log.info("unit %s arrived at %s (%s): drone released", case.unit_id, case.incident.id, why)
        self._callback(self.on_release, case.incident, DispatchStatus.ARRIVED)

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
        self._alerts[alert_id] = OpenAlert(case.incident.id, unit_id)
        with self.journal.transaction():
            self.journal.put_alert(AlertRow(alert_id, case.incident.id, unit_id, AlertStatus.ISSUED, now, expires_at,
                                            message))
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
                    # after the cancel (which marks it cancelled): it timed out
                    self.journal.set_alert_status(alert_id, AlertStatus.TIMED_OUT)
                    self._record_change(case, before, IncidentState.UPDATE)
                log.info("alert %s to %s timed out after %.1f s", alert_id, unit_id, self.config.ack_timeout_s)

    def _cancel_alert(self, alert_id: str, unit_id: str, incident_id: str, reason: str, now: float) -> None:
        """Inside a transaction: tell the unit to stand down from one alert."""
        self.journal.set_alert_status(alert_id, AlertStatus.CANCELLED)
        msg = AlertCancelMessage(alert_id=alert_id, incident_id=incident_id, reason=reason, ts=now)
        self.journal.enqueue(self.topics.unit_alerts(unit_id), dump(msg), qos=1)

    def _forget_alert(self, alert_id: str | None) -> None:
        """The alert is answered for good (or stood down): acks for it are checked against the journal."""
        if alert_id is not None:
            self._alerts.pop(alert_id, None)
