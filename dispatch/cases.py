"""One incident as the controller handles it (`Case`), and its one conversion to and from the
record that is journaled and retained on {prefix}/incidents/{id} (`IncidentRecord`).

The layers and their one type each: vision and the run loop speak `common.values.Incident`; the
controller keeps a `Case` (the incident plus who was alerted, who declined, ...); on the wire and
in the journal it is an `IncidentRecord`, whose `incident` is an `IncidentPayload`
(`IncidentPayload.of` / `.to_incident` convert, in dispatch/schemas.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from common.values import Incident, IncidentKind, IncidentState
from dispatch.schemas import CLOSED, AlarmRef, DispatchStatus, IncidentPayload, IncidentRecord


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
