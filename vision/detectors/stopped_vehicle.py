"""Stopped vehicle: a vehicle track that was moving with traffic (max speed above
`min_prior_speed_m_s`) and has now stayed within `still_radius_m` for `stationary_s`.

Its motion must have faded out slowly (speed at the last motion sighting <=
`max_speed_at_halt_m_s`): braking is seen, teleporting to a standstill is not. Parked cars never moved while watched, so they never alert. When `road_zones` are given, the
stop must also be inside one (a car pulling into a car park is not an accident).
"""
from __future__ import annotations

from shapely.geometry import Point, Polygon
from shapely.prepared import prep

from ..config import StoppedVehicleConfig
from ..tracker import Track
from .base import Sighting


class StoppedVehicleDetector:
    def __init__(self, cfg: StoppedVehicleConfig, road_zones_en: list[Polygon] | None = None) -> None:
        self.cfg = cfg
        self.road_zones = [prep(z) for z in (road_zones_en or [])]

    def update(self, tracks: list[Track], t_s: float) -> list[Sighting]:
        out = []
        c = self.cfg
        for tr in tracks:
            if tr.kind != "vehicle" or tr.ground is None or tr.max_speed_m_s < c.min_prior_speed_m_s:
                continue
            if t_s - tr.last_seen_t > 1.0:
                continue
            # Motion that vanished at speed is a car that drove on (its template now matching
            # road markings), not one that braked to a halt while we watched.
            if tr.speed_at_last_motion_m_s > c.max_speed_at_halt_m_s:
                continue
            since = tr.still_since_s(c.still_radius_m)
            if t_s - since < c.stationary_s:
                continue
            if self.road_zones and not any(z.contains(Point(tr.ground)) for z in self.road_zones):
                continue
            confidence = min(0.95, 0.6 + 0.02 * (t_s - since - c.stationary_s))
            out.append(Sighting("stopped_vehicle", f"veh{tr.id}", tr.x, tr.y, tr.bbox, confidence,
                                ground=tr.ground, since_s=since))
        return out
