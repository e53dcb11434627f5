"""The typed values packages exchange. Immutable, unit-suffixed, no behaviour beyond conversions.

- `Pose`: where a drone is and how it is oriented (flight/ produces, vision/ and the run loop read).
- `MissionItem`, `FenceZone`, `RallyPoint`, `Mission`: one flyable sortie (mission_planner/
  produces, flight/ uploads).
- `CameraModel`: the payload camera (planner lane spacing, vision geolocation, sim rendering).
- `Incident`, `IncidentEvent`: what vision saw (vision/ produces, dispatch/ consumes).
- `Alert`: what a motorcycle unit is told (dispatch/ produces, rider clients consume).
- `Alarm`: an outside report of something at a place (dispatch/ takes it from MQTT or the webhook).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

# MAVLink constants we use by name (values from common.xml; kept here so values need no pymavlink).
MAV_FRAME_GLOBAL = 0
MAV_FRAME_GLOBAL_RELATIVE_ALT = 3
MAV_CMD_NAV_WAYPOINT = 16
MAV_CMD_NAV_LOITER_TIME = 19
MAV_CMD_NAV_RETURN_TO_LAUNCH = 20
MAV_CMD_NAV_LAND = 21
MAV_CMD_NAV_TAKEOFF = 22
MAV_CMD_DO_JUMP = 177
MAV_CMD_DO_CHANGE_SPEED = 178
MAV_CMD_NAV_FENCE_RETURN_POINT = 5000
MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION = 5001
MAV_CMD_NAV_FENCE_POLYGON_VERTEX_EXCLUSION = 5002
MAV_CMD_NAV_FENCE_CIRCLE_INCLUSION = 5003
MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION = 5004
MAV_CMD_NAV_RALLY_POINT = 5100


class MissionType(IntEnum):
    """MAV_MISSION_TYPE: the three lists a vehicle stores, all moved by the same protocol."""

    MISSION = 0
    FENCE = 1
    RALLY = 2


@dataclass(frozen=True, slots=True)
class Pose:
    """A drone's state at one instant. Angles in degrees; yaw/heading clockwise from north."""

    time_s: float
    lat: float
    lon: float
    alt_rel_m: float
    alt_msl_m: float
    roll_deg: float = 0.0
    pitch_deg: float = 0.0
    yaw_deg: float = 0.0
    groundspeed_m_s: float = 0.0
    heading_deg: float = 0.0
    drone_id: str = ""


@dataclass(frozen=True, slots=True)
class MissionItem:
    """One MISSION_ITEM_INT as the vehicle stores it; its seq is its index in the list."""

    command: int
    lat: float = 0.0
    lon: float = 0.0
    alt_m: float = 0.0
    frame: int = MAV_FRAME_GLOBAL_RELATIVE_ALT
    param1: float = 0.0
    param2: float = 0.0
    param3: float = 0.0
    param4: float = 0.0
    autocontinue: int = 1


@dataclass(frozen=True, slots=True)
class FenceZone:
    """A geofence polygon (lat, lon vertices, not closed) or a circle (one centre + radius_m)."""

    inclusion: bool
    vertices: tuple[tuple[float, float], ...] = ()
    radius_m: float = 0.0

    @property
    def is_circle(self) -> bool:
        return self.radius_m > 0


@dataclass(frozen=True, slots=True)
class RallyPoint:
    lat: float
    lon: float
    alt_m: float


@dataclass(frozen=True, slots=True)
class Mission:
    """One sortie as flown: items[0] is home (the vehicle rewrites it), then the patrol items."""

    items: tuple[MissionItem, ...]
    fence: tuple[FenceZone, ...] = ()
    rally: tuple[RallyPoint, ...] = ()
    name: str = ""
    drone_id: str = ""
    grid_ids: tuple[str, ...] = ()

    def fence_items(self) -> tuple[MissionItem, ...]:
        """The fence as MAVLink items (mission_type FENCE): each polygon vertex carries the count."""
        out: list[MissionItem] = []
        for zone in self.fence:
            if zone.is_circle:
                cmd = MAV_CMD_NAV_FENCE_CIRCLE_INCLUSION if zone.inclusion else MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION
                lat, lon = zone.vertices[0]
                out.append(MissionItem(cmd, lat, lon, 0.0, frame=MAV_FRAME_GLOBAL, param1=zone.radius_m))
            else:
                cmd = (MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION if zone.inclusion
                       else MAV_CMD_NAV_FENCE_POLYGON_VERTEX_EXCLUSION)
                n = len(zone.vertices)
                out.extend(MissionItem(cmd, lat, lon, 0.0, frame=MAV_FRAME_GLOBAL, param1=n)
                           for lat, lon in zone.vertices)
        return tuple(out)

    def rally_items(self) -> tuple[MissionItem, ...]:
        return tuple(MissionItem(MAV_CMD_NAV_RALLY_POINT, r.lat, r.lon, r.alt_m) for r in self.rally)


@dataclass(frozen=True, slots=True)
class CameraModel:
    """A pinhole payload camera; default is the 1080p gimbal camera with 82 degree HFOV.

    >>> cam = CameraModel()
    >>> round(cam.footprint_m(60.0)[0], 1)
    104.3
    """

    width_px: int = 1920
    height_px: int = 1080
    hfov_deg: float = 82.0

    @property
    def vfov_deg(self) -> float:
        half = math.tan(math.radians(self.hfov_deg) / 2) * self.height_px / self.width_px
        return math.degrees(2 * math.atan(half))

    @property
    def focal_px(self) -> float:
        return (self.width_px / 2) / math.tan(math.radians(self.hfov_deg) / 2)

    def footprint_m(self, alt_agl_m: float) -> tuple[float, float]:
        """(across-track width, along-track height) in metres of a nadir view from alt_agl_m."""
        return (alt_agl_m * self.width_px / self.focal_px, alt_agl_m * self.height_px / self.focal_px)


class IncidentKind(StrEnum):
    FIRE = "fire"  # fire or smoke
    CROWD = "crowd"
    STOPPED_VEHICLE = "stopped_vehicle"
    INTRUSION = "intrusion"
    # An alarm from outside (a 110 call, a citizen's report, a sensor): a place and a text, not
    # something a camera saw. Vision may confirm it later (dispatch/lifecycle.py).
    REPORTED = "reported"


# What a camera can report (every kind but REPORTED, which only alarms open).
VISION_KINDS: tuple[IncidentKind, ...] = tuple(k for k in IncidentKind if k is not IncidentKind.REPORTED)

# Dispatch order when units are short: 1 is most urgent (a fire before a stopped car).
INCIDENT_PRIORITY: dict[IncidentKind, int] = {
    IncidentKind.FIRE: 1,
    IncidentKind.INTRUSION: 2,
    IncidentKind.CROWD: 3,
    IncidentKind.STOPPED_VEHICLE: 4,
    IncidentKind.REPORTED: 2,  # unless the alarm says otherwise (patrol.alarm/1 `priority`)
}


class IncidentState(StrEnum):
    NEW = "new"
    UPDATE = "update"
    END = "end"


@dataclass(frozen=True, slots=True)
class Incident:
    """An incident as vision places it. lat/lon/error_m are None without telemetry.

    Times are seconds on the source's clock (stream time for files, epoch for live feeds).
    """

    id: str
    kind: IncidentKind
    confidence: float
    first_seen_s: float
    last_seen_s: float
    lat: float | None = None
    lon: float | None = None
    error_m: float | None = None
    drone_id: str = ""
    grid_id: str | None = None
    bbox_px: tuple[int, int, int, int] | None = None  # x, y, w, h in the best frame
    snapshot_jpeg: bytes | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    state: IncidentState
    incident: Incident


@dataclass(frozen=True, slots=True)
class Alert:
    """What one motorcycle unit is asked to do about one incident."""

    alert_id: str
    unit_id: str
    incident: Incident
    distance_m: float
    eta_s: float
    bearing_deg: float
    priority: int
    issued_at_s: float
    expires_at_s: float
    unconfirmed: bool = False  # a reported alarm no camera has seen yet
    text: str | None = None  # what the alarm said (a caller's words), for a reported incident


@dataclass(frozen=True, slots=True)
class Alarm:
    """An alarm from outside the patrol (schema `patrol.alarm/1`): where, what, how urgent.

    `source` names who sent it (the MQTT topic level, `webhook`, `scenario`); `alarm_id` is the
    sender's id, unique per source. A position or a grid cell id (the cell's centre is used).
    """

    source: str
    alarm_id: str
    kind: str  # the sender's category ("110-call", "smoke-sensor"); the incident kind is REPORTED
    text: str = ""
    lat: float | None = None
    lon: float | None = None
    grid_id: str | None = None
    priority: int | None = None  # 1 most urgent; default INCIDENT_PRIORITY[REPORTED]
    ts: float | None = None

    @property
    def incident_id(self) -> str:
        return f"{self.source}.{self.alarm_id}"
