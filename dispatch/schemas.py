"""Wire schemas of the MQTT API (docs/mqtt-api.md), validated with pydantic.

Every inbound payload goes through `parse_*`; a failure raises PayloadError naming the topic and
the first problems, which the controller logs and drops. Inbound OwnTracks locations ignore
unknown keys on purpose (OwnTracks apps send many optional fields); our own schemas forbid them.
"""
from __future__ import annotations

import base64
import binascii
import json
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from common.values import Alarm, Alert, Incident, IncidentKind, IncidentState
from dispatch.errors import PayloadError
from dispatch.topics import ID_PATTERN

DETECTION_SCHEMA = "patrol.detection/1"
ALERT_SCHEMA = "patrol.alert/1"
ALERT_CANCEL_SCHEMA = "patrol.alert-cancel/1"
ACK_SCHEMA = "patrol.ack/1"
PRESENCE_SCHEMA = "patrol.presence/1"
EVENT_SCHEMA = "patrol.event/1"
INCIDENT_SCHEMA = "patrol.incident/1"
ESCALATION_SCHEMA = "patrol.escalation/1"
DRONE_STATE_SCHEMA = "patrol.drone-state/1"
CONTROLLER_SCHEMA = "patrol.controller/1"
ALARM_SCHEMA = "patrol.alarm/1"
WORKER_STATUS_SCHEMA = "patrol.worker-status/1"

MAX_INBOUND_BYTES = 4_000_000  # a detection with a full-size snapshot; anything larger is hostile
ALERT_SNAPSHOT_MAX_BYTES = 30_000

Id = Annotated[str, Field(pattern=ID_PATTERN)]
ALERT_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,96}$"
AlertId = Annotated[str, Field(pattern=ALERT_ID_PATTERN)]
Lat = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Lon = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class Strict(BaseModel):
    # populate_by_name: messages carry their version as `schema`, a name BaseModel reserves
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class IncidentPayload(Strict):
    id: Id
    kind: IncidentKind
    confidence: Annotated[float, Field(ge=0, le=1)]
    lat: Lat | None = None
    lon: Lon | None = None
    error_m: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    first_seen: Finite
    last_seen: Finite | None = None
    grid_id: str | None = Field(None, max_length=64)
    drone_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{0,64}$")] = ""

    @classmethod
    def of(cls, inc: Incident) -> "IncidentPayload":
        return cls(id=inc.id, kind=inc.kind, confidence=inc.confidence, lat=inc.lat, lon=inc.lon,
                   error_m=inc.error_m, first_seen=inc.first_seen_s, last_seen=inc.last_seen_s,
                   grid_id=inc.grid_id, drone_id=inc.drone_id)

    def to_incident(self, snapshot_jpeg: bytes | None = None) -> Incident:
        return Incident(id=self.id, kind=self.kind, confidence=self.confidence, first_seen_s=self.first_seen,
                        last_seen_s=self.last_seen if self.last_seen is not None else self.first_seen,
                        lat=self.lat, lon=self.lon, error_m=self.error_m, drone_id=self.drone_id,
                        grid_id=self.grid_id, snapshot_jpeg=snapshot_jpeg)


def _check_b64(value: str | None, limit: int | None) -> str | None:
    if value is None:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"snapshot is not valid base64: {exc}") from exc
    if raw[:2] != b"\xff\xd8":
        raise ValueError("snapshot is not a JPEG (no FF D8 start-of-image)")
    if limit is not None and len(raw) > limit:
        raise ValueError(f"snapshot is {len(raw)} bytes, limit {limit}")
    return value


class DetectionMessage(Strict):
    """vision -> controller on {prefix}/detections/{drone_id}."""

    schema_: Literal["patrol.detection/1"] = Field(DETECTION_SCHEMA, alias="schema")
    state: IncidentState
    incident: IncidentPayload
    snapshot: str | None = Field(None, title="base64 JPEG (any size up to the inbound cap)")


    @field_validator("snapshot")
    @classmethod
    def _snapshot(cls, value: str | None) -> str | None:
        return _check_b64(value, None)

    @field_validator("incident")
    @classmethod
    def _seen(cls, value: IncidentPayload) -> IncidentPayload:
        if value.kind == IncidentKind.REPORTED:
            raise ValueError("a detection is never of kind reported (alarms go to alarms/{source})")
        return value

    def snapshot_bytes(self) -> bytes | None:
        return base64.b64decode(self.snapshot) if self.snapshot else None


class AlarmMessage(Strict):
    """outside -> controller on {prefix}/alarms/{source} (or POST /alarms): something reported at a
    place. A position (lat and lon) or a grid cell id; the controller opens a `reported` incident."""

    schema_: Literal["patrol.alarm/1"] = Field(ALARM_SCHEMA, alias="schema")
    id: Id
    kind: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,32}$", title="the sender's category, e.g. 110-call")
    lat: Lat | None = None
    lon: Lon | None = None
    grid_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    priority: Annotated[int, Field(ge=1, le=9)] | None = Field(None, title="1 most urgent; default that of reported")
    text: str = Field("", max_length=500)
    ts: Finite | None = None

    @model_validator(mode="after")
    def _place(self) -> "AlarmMessage":
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon go together")
        if self.lat is None and self.grid_id is None:
            raise ValueError("an alarm needs a place: lat and lon, or grid_id")
        return self

    def to_alarm(self, source: str) -> Alarm:
        return Alarm(source=source, alarm_id=self.id, kind=self.kind, text=self.text, lat=self.lat, lon=self.lon,
                     grid_id=self.grid_id, priority=self.priority, ts=self.ts)


class AlarmRef(Strict):
    """The alarm a `reported` incident came from, kept in its record."""

    source: Id
    id: Id
    kind: str
    text: str = ""

    @classmethod
    def of(cls, alarm: Alarm) -> "AlarmRef":
        return cls(source=alarm.source, id=alarm.alarm_id, kind=alarm.kind, text=alarm.text)


UnitStatus = Literal["available", "busy", "off"]


class LocationMessage(BaseModel):
    """unit -> controller on {prefix}/units/{unit_id}/location; OwnTracks `location` plus `status`."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    type_: Literal["location"] = Field("location", alias="_type")
    lat: Lat
    lon: Lon
    tst: Annotated[int, Field(ge=0)] = Field(title="fix time, epoch seconds")
    acc: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    vel: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = Field(None, title="km/h (OwnTracks)")
    cog: Annotated[float, Field(ge=0, le=360)] | None = None
    batt: Annotated[int, Field(ge=0, le=100)] | None = None
    status: UnitStatus = "available"


class PresenceMessage(Strict):
    """unit or controller presence, retained; the client's Last Will says offline."""

    schema_: Literal["patrol.presence/1"] = Field(PRESENCE_SCHEMA, alias="schema")
    state: Literal["online", "offline"]
    # offline because the link was lost (Last Will: still on duty, alerts queue for it) or because
    # the officer signed off (not assignable until online again).
    reason: Literal["lost", "signed_off"] | None = None
    ts: Finite | None = None


AckAction = Literal["accept", "decline", "arrived", "resolved"]


class AckMessage(Strict):
    """unit -> controller on {prefix}/units/{unit_id}/acks."""

    schema_: Literal["patrol.ack/1"] = Field(ACK_SCHEMA, alias="schema")
    alert_id: AlertId
    action: AckAction
    ts: Finite | None = None
    reason: str | None = Field(None, max_length=200)


class AlertMessage(Strict):
    """controller -> unit on {prefix}/units/{unit_id}/alerts, QoS 1."""

    schema_: Literal["patrol.alert/1"] = Field(ALERT_SCHEMA, alias="schema")
    alert_id: AlertId
    unit_id: Id
    incident: IncidentPayload
    distance_m: Annotated[float, Field(ge=0)]
    eta_s: Annotated[float, Field(ge=0)]
    bearing_deg: Annotated[float, Field(ge=0, le=360)]
    priority: int
    issued_at: Finite
    expires_at: Finite
    snapshot: str | None = Field(None, title=f"base64 JPEG, at most {ALERT_SNAPSHOT_MAX_BYTES} bytes decoded")
    # A reported alarm (incident kind `reported`) no camera has confirmed yet, and what it said.
    # Left out when unset, so an alert about a vision incident is what it was before alarms.
    unconfirmed: bool = Field(False, exclude_if=lambda v: not v)
    text: str | None = Field(None, max_length=500, exclude_if=lambda v: v is None)

    @field_validator("snapshot")
    @classmethod
    def _snapshot(cls, value: str | None) -> str | None:
        return _check_b64(value, ALERT_SNAPSHOT_MAX_BYTES)

    @classmethod
    def of(cls, alert: Alert, snapshot_jpeg: bytes | None) -> "AlertMessage":
        return cls(alert_id=alert.alert_id, unit_id=alert.unit_id, incident=IncidentPayload.of(alert.incident),
                   distance_m=round(alert.distance_m, 1), eta_s=round(alert.eta_s, 1),
                   bearing_deg=round(alert.bearing_deg, 1) % 360, priority=alert.priority,
                   issued_at=alert.issued_at_s, expires_at=alert.expires_at_s,
                   snapshot=base64.b64encode(snapshot_jpeg).decode() if snapshot_jpeg else None,
                   unconfirmed=alert.unconfirmed, text=alert.text)

    def snapshot_bytes(self) -> bytes | None:
        return base64.b64decode(self.snapshot) if self.snapshot else None


class AlertCancelMessage(Strict):
    """controller -> unit on the same alerts topic: stand down from an alert."""

    schema_: Literal["patrol.alert-cancel/1"] = Field(ALERT_CANCEL_SCHEMA, alias="schema")
    alert_id: AlertId
    incident_id: Id
    reason: str
    ts: Finite


class DispatchStatus(StrEnum):
    """Where an incident is in dispatch; the `status` of `patrol.incident/1` (the values are the wire's)."""

    UNLOCATED = "unlocated"  # no position yet: waits for a detection update with one
    PENDING = "pending"  # waiting for a unit to be alerted
    ESCALATED = "escalated"  # no unit could be alerted; the escalation is retried
    ALERTING = "alerting"  # one unit alerted, its answer awaited
    ACCEPTED = "accepted"  # the unit is on its way
    ARRIVED = "arrived"  # the unit is there; the drone is released
    RESOLVED = "resolved"  # closed by the unit
    ENDED = "ended"  # closed: gone before a unit took it
    FALSE_ALARM = "false_alarm"  # closed by the operator (runloop/operator.py)


# The groups of statuses the controller decides by; one home, next to the statuses themselves.
WAITING = frozenset({DispatchStatus.PENDING, DispatchStatus.ESCALATED})  # a unit is to be alerted
UNIT_ALERTED = frozenset({DispatchStatus.ALERTING, DispatchStatus.ACCEPTED})  # a unit has it, not yet there
UNIT_HOLDS = UNIT_ALERTED | {DispatchStatus.ARRIVED}  # a unit has it (until it is resolved)
NOT_TAKEN = WAITING | {DispatchStatus.UNLOCATED, DispatchStatus.ALERTING}  # no unit has accepted it yet
HOLDING = NOT_TAKEN | {DispatchStatus.ACCEPTED}  # a drone should stay overhead
CLOSED = frozenset({DispatchStatus.RESOLVED, DispatchStatus.ENDED, DispatchStatus.FALSE_ALARM})


class IncidentRecord(Strict):
    """The controller's view of one incident: retained on {prefix}/incidents/{id}."""

    schema_: Literal["patrol.incident/1"] = Field(INCIDENT_SCHEMA, alias="schema")
    incident: IncidentPayload
    status: DispatchStatus
    priority: int
    unit_id: str | None = None
    alert_id: str | None = None
    attempts: int = 0
    escalations: int = 0
    declined_by: tuple[str, ...] = ()
    timed_out: tuple[str, ...] = ()
    vision_state: IncidentState = IncidentState.NEW
    # Other vision reports of this same incident (another drone's, or a second track of the same
    # fire) folded in rather than dispatched again: report id -> its latest vision state.
    linked_reports: dict[str, IncidentState] = Field(default_factory=dict)
    # A `reported` incident: the alarm it came from (confirmed once a vision report is linked).
    alarm: AlarmRef | None = Field(None, exclude_if=lambda v: v is None)  # left out when unset
    opened_at: Finite
    updated_at: Finite
    closed: bool = False


class EventMessage(Strict):
    """controller -> all on {prefix}/events: one incident lifecycle change."""

    schema_: Literal["patrol.event/1"] = Field(EVENT_SCHEMA, alias="schema")
    type: IncidentState
    before: IncidentRecord | None
    after: IncidentRecord


class EscalationMessage(Strict):
    schema_: Literal["patrol.escalation/1"] = Field(ESCALATION_SCHEMA, alias="schema")
    incident: IncidentPayload
    reason: str
    round: int
    tried_units: tuple[str, ...]
    ts: Finite


class DroneStateMessage(Strict):
    """retained ≈1 Hz summary of one drone on {prefix}/drones/{drone_id}/state."""

    schema_: Literal["patrol.drone-state/1"] = Field(DRONE_STATE_SCHEMA, alias="schema")
    drone_id: Id
    lat: Lat
    lon: Lon
    alt_rel_m: Finite
    heading_deg: Finite = 0.0
    groundspeed_m_s: Finite = 0.0
    mode: str = ""
    battery_pct: float | None = None
    overwatch_incident_id: str | None = None
    ts: Finite


class ControllerStatusMessage(Strict):
    schema_: Literal["patrol.controller/1"] = Field(CONTROLLER_SCHEMA, alias="schema")
    state: Literal["online", "offline"]
    client_id: str
    ts: Finite | None = None
    open_incidents: int | None = None
    units_known: int | None = None
    messages_received: int | None = None
    locations_ingested: int | None = None
    payloads_rejected: int | None = None
    alerts_issued: int | None = None


class WorkerStatusMessage(Strict):
    """A vision worker's health, retained on {prefix}/workers/{drone_id}/status (Last Will: offline, lost)."""

    schema_: Literal["patrol.worker-status/1"] = Field(WORKER_STATUS_SCHEMA, alias="schema")
    state: Literal["online", "offline"]
    drone_id: Id
    reason: Literal["lost", "stopped", "ended", "failed"] | None = Field(None, title="offline: why")
    ts: Finite | None = None
    video: Literal["opening", "ok", "lost", "ended"] | None = None
    pose: Literal["ok", "stale", "none"] | None = Field(None, title="live pose: fresh, too old to use, or never had one")
    pose_source: str | None = None
    frames: int | None = Field(None, ge=0, title="frames looked at since the worker started")
    frames_per_s: Finite | None = None
    detections: int | None = Field(None, ge=0, title="detection messages made (new, update, end)")
    published: int | None = Field(None, ge=0, title="of those, acknowledged by the broker")
    queued: int | None = Field(None, ge=0, title="waiting for the broker")
    dropped: int | None = Field(None, ge=0, title="dropped from a full queue (updates first), each one logged")
    video_reopens: int | None = Field(None, ge=0)
    last_error: str | None = Field(None, max_length=500)


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], payload: bytes | bytearray | str, topic: str) -> M:
    """Validate one inbound payload; PayloadError says which topic and what is wrong."""
    if len(payload) > MAX_INBOUND_BYTES:
        raise PayloadError(f"{topic}: payload of {len(payload)} bytes exceeds {MAX_INBOUND_BYTES}")
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(payload)'}: {err['msg']}" for err in exc.errors()[:4])
        raise PayloadError(f"{topic}: invalid {model.__name__}: {problems}") from exc


def dump(message: BaseModel) -> bytes:
    """Compact JSON with schema aliases (`schema`, `_type`)."""
    return message.model_dump_json(by_alias=True, exclude_none=False).encode()


def to_jsonable(message: BaseModel) -> dict[str, Any]:
    return json.loads(dump(message))
