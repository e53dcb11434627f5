"""`vehicle.retask`: pull a drone off its patrol to watch an incident, then put it back.

Overwatch is GUIDED at a standoff point with the ROI on the incident: the vehicle holds position
and altitude by itself. CIRCLE and LOITER are never used: they follow the throttle stick, and
with nobody on it the vehicle sinks.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.geo import bearing_deg, destination, distance_m
from flight.errors import FlightError

if TYPE_CHECKING:
    from typing import Protocol

    from flight.action import Action
    from flight.core import VehicleCore
    from flight.mission import MissionClient

    class RetaskVehicle(VehicleCore, Protocol):
        """What an overwatch needs: the core, actions, and the mission to resume."""
        action: Action
        mission: MissionClient

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Overwatch:
    """An active overwatch: where the drone holds, what it watches, where its patrol was interrupted."""

    incident_lat: float
    incident_lon: float
    hold_lat: float
    hold_lon: float
    alt_m: float
    interrupted_seq: int | None  # None when the drone was not flying its mission (AUTO)


def standoff_point(drone_lat: float, drone_lon: float, incident_lat: float, incident_lon: float,
                   standoff_m: float) -> tuple[float, float]:
    """The point `standoff_m` from the incident on the drone's side of it (shortest approach).

    >>> lat, lon = standoff_point(32.0, 119.59, 32.0, 119.58, 50.0)
    >>> round(distance_m(lat, lon, 32.0, 119.58)), round(bearing_deg(32.0, 119.58, lat, lon))
    (50, 90)
    """
    if standoff_m <= 0 or distance_m(drone_lat, drone_lon, incident_lat, incident_lon) < 1.0:
        return destination(incident_lat, incident_lon, 0.0, standoff_m) if standoff_m > 0 else (incident_lat, incident_lon)
    return destination(incident_lat, incident_lon, bearing_deg(incident_lat, incident_lon, drone_lat, drone_lon),
                       standoff_m)


class Retask:
    def __init__(self, vehicle: "RetaskVehicle") -> None:
        self._v = vehicle
        self.active: Overwatch | None = None
        # the item a sortie will start from while it is still taking off (set by fly_sortie):
        # an overwatch then resumes the sortie from there
        self.pending_seq: int | None = None

    async def overwatch(self, lat: float, lon: float, standoff_m: float = 60.0, alt_m: float = 40.0, *,
                        wait_arrival: bool = True, timeout_s: float = 120.0) -> Overwatch:
        """Leave the patrol, fly to a standoff point near (lat, lon) and hold there looking at it.

        Remembers the interrupted mission item so `resume_patrol()` continues from it. Calling it
        again while on overwatch moves the watch to the new incident and keeps the remembered item.
        """
        v = self._v
        s = v.state
        if not s.armed or s.pose is None:
            raise FlightError("overwatch needs an airborne vehicle with a position", drone_id=v.drone_id)
        if self.active is not None:
            interrupted = self.active.interrupted_seq
        else:
            interrupted = s.mission_seq if s.mode == "AUTO" else self.pending_seq
        # GUIDED first: the vehicle stops where it is and keeps the current item (seen in SITL).
        await v.action.set_mode("GUIDED")
        hold_lat, hold_lon = standoff_point(s.pose.lat, s.pose.lon, lat, lon, standoff_m)
        self.active = Overwatch(lat, lon, hold_lat, hold_lon, alt_m, interrupted)
        await v.action.goto(hold_lat, hold_lon, alt_m)
        await v.action.set_roi(lat, lon, 0.0)
        log.info("%s: overwatch of %.6f,%.6f from %.6f,%.6f (patrol item %s)", v.drone_id, lat, lon,
                 hold_lat, hold_lon, interrupted)
        if wait_arrival:
            await v.wait_position(hold_lat, hold_lon, within_m=max(3.0, standoff_m * 0.1), timeout_s=timeout_s)
        return self.active

    async def resume_patrol(self, *, timeout_s: float = 10.0) -> int | None:
        """Back to the patrol: ROI off, the interrupted item made current, AUTO. Returns that item."""
        v = self._v
        ow = self.active
        if ow is None:
            raise FlightError("resume_patrol without an overwatch in progress", drone_id=v.drone_id)
        await v.action.clear_roi()
        seq = ow.interrupted_seq
        if seq is not None:
            if v.state.mission_seq != seq:
                await v.mission.set_current(seq)
            await v.action.set_mode("AUTO", timeout_s=timeout_s)
            await v.wait_current_item(seq, timeout_s=timeout_s)
        self.active = None
        return seq
