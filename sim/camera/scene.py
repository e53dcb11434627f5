"""A synthetic scene (ground + actors + restricted zones) and scripted camera flights over it."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from common.geo import LocalFrame
from common.values import Pose

from .texture import GroundTexture, build_texture, road_lines

Point = tuple[float, float]


@dataclass
class Scene:
    """Flat ground of `size_m` square centred on the origin, with actors and restricted zones.

    Actor positions are local east/north metres from the origin; zones are (lat, lon) polygons
    as an operator would draw them on a map.
    """

    origin_lat: float = 32.0
    origin_lon: float = 119.58
    size_m: float = 400.0
    m_per_px: float = 0.15
    seed: int = 1
    road_spacing_m: float = 100.0
    ground_msl_m: float = 10.0
    actors: list = field(default_factory=list)
    restricted_zones: list[tuple[tuple[float, float], ...]] = field(default_factory=list)

    @property
    def frame(self) -> LocalFrame:
        return LocalFrame(self.origin_lat, self.origin_lon)

    def latlon(self, east_m: float, north_m: float) -> tuple[float, float]:
        return self.frame.to_latlon(east_m, north_m)

    def en(self, lat: float, lon: float) -> Point:
        return self.frame.to_en(lat, lon)

    @property
    def roads(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(east of north-south roads, north of east-west roads) in metres."""
        return road_lines(self.size_m, self.road_spacing_m)

    def road_zones(self) -> list[list[tuple[float, float]]]:
        """The traffic lanes as (lat, lon) polygons, one per road across the scene (map data a
        real deployment would load from its road network)."""
        from .texture import ROAD_WIDTH_M

        half, w = self.size_m / 2, ROAD_WIDTH_M / 2
        roads_e, roads_n = self.roads
        out = [[self.latlon(e - w, -half), self.latlon(e + w, -half), self.latlon(e + w, half), self.latlon(e - w, half)]
               for e in roads_e]
        out += [[self.latlon(-half, n - w), self.latlon(half, n - w), self.latlon(half, n + w), self.latlon(-half, n + w)]
                for n in roads_n]
        return out

    def texture(self) -> GroundTexture:
        return build_texture(self.size_m, self.m_per_px, self.seed, self.road_spacing_m)

    def add_zone_en(self, corners_en: list[Point]) -> tuple[tuple[float, float], ...]:
        """Add a restricted zone given in local metres; returns it as (lat, lon) vertices."""
        zone = tuple(self.latlon(e, n) for e, n in corners_en)
        self.restricted_zones.append(zone)
        return zone


class Flight(Protocol):
    def pose(self, scene: Scene, t_s: float) -> Pose: ...


def _pose(scene: Scene, e: float, n: float, alt_m: float, yaw_deg: float, t_s: float,
          speed: float, heading: float, drone_id: str) -> Pose:
    lat, lon = scene.latlon(e, n)
    return Pose(time_s=t_s, lat=lat, lon=lon, alt_rel_m=alt_m, alt_msl_m=alt_m + scene.ground_msl_m,
                yaw_deg=yaw_deg % 360, groundspeed_m_s=speed, heading_deg=heading % 360, drone_id=drone_id)


@dataclass
class HoverFlight:
    """Holding over a point while the wind pushes it around a slow `drift_m` ellipse."""

    centre_en: Point = (0.0, 0.0)
    alt_m: float = 60.0
    yaw_deg: float = 0.0
    drift_m: float = 3.0
    period_s: float = 25.0
    yaw_swing_deg: float = 4.0
    drone_id: str = "d1"

    def pose(self, scene: Scene, t_s: float) -> Pose:
        w = 2 * math.pi / self.period_s
        e = self.centre_en[0] + self.drift_m * math.sin(w * t_s)
        n = self.centre_en[1] + 0.6 * self.drift_m * math.sin(2 * w * t_s + 1.0)
        yaw = self.yaw_deg + self.yaw_swing_deg * math.sin(0.5 * w * t_s)
        speed = self.drift_m * w
        return _pose(scene, e, n, self.alt_m, yaw, t_s, speed, yaw, self.drone_id)


@dataclass
class LaneFlight:
    """Flying a straight patrol lane at constant speed, camera yawed along track."""

    start_en: Point
    end_en: Point
    alt_m: float = 60.0
    speed_m_s: float = 8.0
    start_s: float = 0.0
    drone_id: str = "d1"

    def pose(self, scene: Scene, t_s: float) -> Pose:
        (e0, n0), (e1, n1) = self.start_en, self.end_en
        length = math.hypot(e1 - e0, n1 - n0)
        d = min(length, max(0.0, t_s - self.start_s) * self.speed_m_s)
        f = d / length if length else 0.0
        heading = math.degrees(math.atan2(e1 - e0, n1 - n0))
        return _pose(scene, e0 + f * (e1 - e0), n0 + f * (n1 - n0), self.alt_m, heading, t_s,
                     self.speed_m_s, heading, self.drone_id)

    @property
    def duration_s(self) -> float:
        return math.hypot(self.end_en[0] - self.start_en[0], self.end_en[1] - self.start_en[1]) / self.speed_m_s


@dataclass
class PatrolFlight:
    """Flying a loop of waypoints at constant speed, turning in place at each one (yaw rate
    `turn_rate_deg_s`) so the camera sees real rotations, as on a lawnmower patrol."""

    waypoints: tuple[Point, ...]
    alt_m: float = 60.0
    speed_m_s: float = 6.0
    turn_rate_deg_s: float = 30.0
    drone_id: str = "d1"

    def _legs(self) -> list[tuple[str, float, tuple]]:
        legs = []
        pts = list(self.waypoints) + [self.waypoints[0]]
        headings = [math.degrees(math.atan2(b[0] - a[0], b[1] - a[1])) for a, b in zip(pts, pts[1:])]
        for i, (a, b) in enumerate(zip(pts, pts[1:])):
            legs.append(("fly", math.dist(a, b) / self.speed_m_s, (a, b, headings[i])))
            nxt = headings[(i + 1) % len(headings)]
            turn = (nxt - headings[i] + 180.0) % 360.0 - 180.0
            legs.append(("turn", abs(turn) / self.turn_rate_deg_s, (b, headings[i], turn)))
        return legs

    def pose(self, scene: Scene, t_s: float) -> Pose:
        legs = self._legs()
        period = sum(d for _, d, _ in legs)
        t = t_s % period if period > 0 else 0.0
        for kind, dur, data in legs:
            if t <= dur:
                f = t / dur if dur > 0 else 1.0
                if kind == "fly":
                    (e0, n0), (e1, n1), hdg = data
                    return _pose(scene, e0 + f * (e1 - e0), n0 + f * (n1 - n0), self.alt_m, hdg, t_s,
                                 self.speed_m_s, hdg, self.drone_id)
                (e, n), hdg, turn = data
                return _pose(scene, e, n, self.alt_m, hdg + f * turn, t_s, 0.0, hdg + f * turn, self.drone_id)
            t -= dur
        (e, n) = self.waypoints[0]
        return _pose(scene, e, n, self.alt_m, 0.0, t_s, 0.0, 0.0, self.drone_id)
