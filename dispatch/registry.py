"""Motorcycle units as the controller knows them, built from their location/status messages."""
from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class RiderUnit:
    """One motorcycle unit. `status` is what the unit says; `incident_ids` is what we gave it."""

    unit_id: str
    lat: float
    lon: float
    last_seen_s: float  # controller clock (time.time()) when we last heard anything from it
    fix_time_s: float = 0.0
    speed_m_s: float | None = None
    heading_deg: float | None = None
    battery_pct: int | None = None
    status: str = "available"  # available | busy | off
    online: bool = True
    incident_ids: set[str] = field(default_factory=set)

    @property
    def load(self) -> int:
        return len(self.incident_ids)


class UnitRegistry:
    """Units keyed by id; a unit silent for `silence_s` (or offline / off / busy) is not assignable."""

    def __init__(self, silence_s: float, clock=time.time):
        self.silence_s = silence_s
        self.clock = clock
        self._units: dict[str, RiderUnit] = {}

    def __len__(self) -> int:
        return len(self._units)

    def __contains__(self, unit_id: str) -> bool:
        return unit_id in self._units

    def get(self, unit_id: str) -> RiderUnit | None:
        return self._units.get(unit_id)

    def all(self) -> list[RiderUnit]:
        return list(self._units.values())

    def update_location(self, unit_id: str, lat: float, lon: float, fix_time_s: float, status: str,
                        speed_m_s: float | None = None, heading_deg: float | None = None,
                        battery_pct: int | None = None, now_s: float | None = None) -> RiderUnit:
        now_s = self.clock() if now_s is None else now_s
        unit = self._units.get(unit_id)
        if unit is None:
            unit = self._units[unit_id] = RiderUnit(unit_id, lat, lon, now_s)
        unit.lat, unit.lon, unit.fix_time_s, unit.status = lat, lon, fix_time_s, status
        unit.speed_m_s, unit.heading_deg, unit.battery_pct = speed_m_s, heading_deg, battery_pct
        unit.last_seen_s = now_s
        unit.online = True
        return unit

    def restore(self, unit: RiderUnit) -> None:
        """Put back a unit from the journal after a restart (its last_seen keeps it honest)."""
        self._units[unit.unit_id] = unit

    def set_presence(self, unit_id: str, online: bool) -> None:
        unit = self._units.get(unit_id)
        if unit is not None:
            unit.online = online
            if online:
                unit.last_seen_s = self.clock()

    def unavailable_reason(self, unit: RiderUnit, max_load: int, now_s: float | None = None) -> str | None:
        """Why this unit cannot take an alert now (None when it can), as a dispatcher would say it."""
        now_s = self.clock() if now_s is None else now_s
        if not unit.online:
            return "signed off"
        silent_s = now_s - unit.last_seen_s
        if silent_s > self.silence_s:
            return f"silent {silent_s:.0f} s"
        if unit.status != "available":
            return unit.status
        if unit.load >= max_load:
            return f"at its limit of {max_load} incident{'s' if max_load != 1 else ''}"
        return None

    def assignable(self, max_load: int, now_s: float | None = None) -> list[RiderUnit]:
        now_s = self.clock() if now_s is None else now_s
        return [u for u in self._units.values() if self.unavailable_reason(u, max_load, now_s) is None]

    def assign(self, unit_id: str, incident_id: str) -> None:
        unit = self._units.get(unit_id)
        if unit is not None:
            unit.incident_ids.add(incident_id)

    def release(self, unit_id: str | None, incident_id: str) -> None:
        unit = self._units.get(unit_id) if unit_id else None
        if unit is not None:
            unit.incident_ids.discard(incident_id)
