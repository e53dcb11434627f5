"""Scripted actors at world coordinates (local east/north metres of the scene origin).

Each actor answers `position_en(t_s)` and draws itself given a world->image homography. Actors
that make an incident also say since when (`incident_since_s`), so the camera can emit ground
truth next to the frames:
- `CarActor` with `stop_at_s`: a vehicle that stops in traffic (stopped_vehicle, since it halts).
- `CrowdActor`: people walking in to gather (crowd, since the `alert_count`-th one arrives).
- `FireActor`: a flickering fire with a growing smoke plume (fire, since ignition).
- People or cars whose path enters a restricted zone make intrusions (judged by the camera).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from common.values import IncidentKind

Point = tuple[float, float]


def _project(h: np.ndarray, pts_en: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(pts_en.reshape(-1, 1, 2).astype(np.float64), h).reshape(-1, 2)


def _polyline_point(path: tuple[Point, ...], dist_m: float) -> tuple[Point, float]:
    """Point at `dist_m` along `path` (clamped to its end) and the heading of that segment."""
    last = len(path) - 2
    for i, ((e0, n0), (e1, n1)) in enumerate(zip(path, path[1:])):
        seg = math.hypot(e1 - e0, n1 - n0)
        if dist_m <= seg or i == last:  # by index: a path may pass the same point twice
            f = min(1.0, dist_m / seg) if seg > 0 else 1.0
            return (e0 + f * (e1 - e0), n0 + f * (n1 - n0)), math.atan2(e1 - e0, n1 - n0)
        dist_m -= seg
    return path[-1], 0.0


def _path_length(path: tuple[Point, ...]) -> float:
    return sum(math.hypot(b[0] - a[0], b[1] - a[1]) for a, b in zip(path, path[1:]))


@dataclass
class Mover:
    """Something moving along a polyline at constant speed between start_s and its path end.

    With `stop_at_s` it brakes (decel_m_s2) from that time and then stays put.
    """

    path: tuple[Point, ...]
    speed_m_s: float
    start_s: float = 0.0
    stop_at_s: float | None = None
    decel_m_s2: float = 3.0

    def distance_m(self, t_s: float) -> float:
        t = max(0.0, t_s - self.start_s)
        if self.stop_at_s is not None:
            t_brake = max(0.0, self.stop_at_s - self.start_s)
            if t > t_brake:
                tb = min(t - t_brake, self.speed_m_s / self.decel_m_s2)
                return self.speed_m_s * t_brake + self.speed_m_s * tb - 0.5 * self.decel_m_s2 * tb * tb
        return min(self.speed_m_s * t, _path_length(self.path))

    def halted_s(self) -> float | None:
        """Time the mover comes to rest (after braking), None if it never stops on purpose."""
        if self.stop_at_s is None:
            return None
        return self.stop_at_s + self.speed_m_s / self.decel_m_s2

    def pose_en(self, t_s: float) -> tuple[Point, float]:
        return _polyline_point(self.path, self.distance_m(t_s))


@dataclass
class CarActor:
    """A car on a road. length/width in metres; colour BGR."""

    mover: Mover
    colour: tuple[int, int, int] = (180, 180, 185)
    length_m: float = 4.5
    width_m: float = 1.8
    name: str = "car"

    kind = "car"

    def position_en(self, t_s: float) -> Point:
        return self.mover.pose_en(t_s)[0]

    def active(self, t_s: float) -> bool:
        return t_s >= self.mover.start_s

    def incident_since_s(self) -> tuple[IncidentKind, float] | None:
        halted = self.mover.halted_s()
        return (IncidentKind.STOPPED_VEHICLE, halted) if halted is not None else None

    def draw(self, img: np.ndarray, h: np.ndarray, t_s: float, rng: np.random.Generator) -> None:
        (e, n), heading = self.mover.pose_en(t_s)
        fwd = np.array([math.sin(heading), math.cos(heading)])
        side = np.array([fwd[1], -fwd[0]])
        c = np.array([e, n])

        def rect(front: float, back: float, half_w: float, shift=(0.0, 0.0)) -> np.ndarray:
            s = np.array(shift)
            pts = [c + s + fwd * front + side * half_w, c + s + fwd * front - side * half_w,
                   c + s - fwd * back - side * half_w, c + s - fwd * back + side * half_w]
            return _project(h, np.array(pts))

        half_l, half_w = self.length_m / 2, self.width_m / 2
        cv2.fillConvexPoly(img, rect(half_l, half_l, half_w, (0.35, -0.35)).astype(np.int32), (30, 32, 32), cv2.LINE_AA)
        cv2.fillConvexPoly(img, rect(half_l, half_l, half_w).astype(np.int32), self.colour, cv2.LINE_AA)
        # Windscreen and rear window make the body textured, as real cars are.
        cv2.fillConvexPoly(img, rect(half_l * 0.55, -half_l * 0.2, half_w * 0.85).astype(np.int32), (40, 35, 30), cv2.LINE_AA)
        cv2.fillConvexPoly(img, rect(-half_l * 0.55, half_l * 0.8, half_w * 0.8).astype(np.int32), (45, 40, 35), cv2.LINE_AA)


@dataclass
class PersonActor:
    """A walking person: a 0.5 m head-and-shoulders blob with a shadow."""

    mover: Mover
    colour: tuple[int, int, int] = (40, 40, 160)
    sway_m: float = 0.0  # fidgeting once at rest (people in a crowd shuffle)
    name: str = "person"
    _phase: float = field(default=0.0, repr=False)

    kind = "person"

    def position_en(self, t_s: float) -> Point:
        (e, n), _ = self.mover.pose_en(t_s)
        if self.sway_m:
            e += self.sway_m * math.sin(0.7 * t_s + self._phase)
            n += self.sway_m * math.cos(0.5 * t_s + 2 * self._phase)
        return e, n

    def active(self, t_s: float) -> bool:
        return t_s >= self.mover.start_s

    def incident_since_s(self) -> tuple[IncidentKind, float] | None:
        return None

    def draw(self, img: np.ndarray, h: np.ndarray, t_s: float, rng: np.random.Generator) -> None:
        e, n = self.position_en(t_s)
        pts = _project(h, np.array([[e, n], [e + 0.3, n], [e + 0.35, n - 0.35]]))
        r = max(1, int(round(np.linalg.norm(pts[1] - pts[0]))))
        cv2.circle(img, tuple(np.round(pts[2]).astype(int)), r, (25, 28, 28), -1, cv2.LINE_AA)
        cv2.circle(img, tuple(np.round(pts[0]).astype(int)), r, self.colour, -1, cv2.LINE_AA)


_SHIRTS = [(40, 40, 160), (160, 60, 40), (220, 220, 220), (30, 30, 30), (40, 140, 200), (90, 40, 110), (50, 120, 50)]


@dataclass
class CrowdActor:
    """People walking in from `approach_m` away to gather within `radius_m` of a centre.

    `alert_count` people within `alert_radius_m` of the centre make it a crowd (the detector's
    min_people and radius_m); the incident exists from that moment.
    """

    centre_en: Point
    n_people: int = 7
    start_s: float = 0.0
    arrive_every_s: float = 1.0
    radius_m: float = 3.0
    approach_m: float = 10.0
    walk_m_s: float = 1.3
    alert_count: int = 5
    alert_radius_m: float = 5.0
    seed: int = 0
    name: str = "crowd"
    members: list[PersonActor] = field(default_factory=list)
    _since: float | None = field(default=None, repr=False)

    kind = "crowd"

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        ce, cn = self.centre_en
        for i in range(self.n_people):
            ang = rng.uniform(0, 2 * math.pi)
            slot_r = self.radius_m * math.sqrt(rng.uniform(0.1, 1.0))
            slot_a = rng.uniform(0, 2 * math.pi)
            slot = (ce + slot_r * math.sin(slot_a), cn + slot_r * math.cos(slot_a))
            origin = (slot[0] + self.approach_m * math.sin(ang), slot[1] + self.approach_m * math.cos(ang))
            walk_s = self.approach_m / self.walk_m_s
            start = self.start_s + i * self.arrive_every_s
            person = PersonActor(Mover((origin, slot), self.walk_m_s, start_s=start), colour=_SHIRTS[i % len(_SHIRTS)],
                                 sway_m=0.15, name=f"{self.name}-{i}", _phase=rng.uniform(0, 6.28))
            person.arrival_s = start + walk_s  # type: ignore[attr-defined]
            self.members.append(person)

    def arrival_times(self) -> list[float]:
        return sorted(p.arrival_s for p in self.members)  # type: ignore[attr-defined]

    def position_en(self, t_s: float) -> Point:
        return self.centre_en

    def active(self, t_s: float) -> bool:
        return t_s >= self.start_s

    def incident_since_s(self) -> tuple[IncidentKind, float] | None:
        if self.n_people < self.alert_count:
            return None
        if self._since is None:
            self._since = self._compute_since()
        return IncidentKind.CROWD, self._since

    def _compute_since(self) -> float:
        # The first moment alert_count people stand within alert_radius_m of the crowd centre.
        t = self.start_s
        end = max(self.arrival_times()) + 1.0
        while t <= end:
            inside = sum(1 for p in self.members if p.active(t)
                         and math.dist(p.position_en(t), self.centre_en) <= self.alert_radius_m)
            if inside >= self.alert_count:
                return t
            t += 0.05
        return end

    def draw(self, img: np.ndarray, h: np.ndarray, t_s: float, rng: np.random.Generator) -> None:
        for p in self.members:
            if p.active(t_s):
                p.draw(img, h, t_s, rng)


@dataclass
class FireActor:
    """A fire that grows from ignition, flickers every frame and trails a grey smoke plume."""

    centre_en: Point
    ignite_s: float = 0.0
    radius0_m: float = 0.8
    growth_m_s: float = 0.05
    max_radius_m: float = 3.0
    wind_en_m_s: Point = (1.2, 0.6)
    name: str = "fire"

    kind = "fire"

    def position_en(self, t_s: float) -> Point:
        return self.centre_en

    def active(self, t_s: float) -> bool:
        return t_s >= self.ignite_s

    def incident_since_s(self) -> tuple[IncidentKind, float] | None:
        return IncidentKind.FIRE, self.ignite_s

    def radius_m(self, t_s: float) -> float:
        return min(self.max_radius_m, self.radius0_m + self.growth_m_s * max(0.0, t_s - self.ignite_s))

    def draw(self, img: np.ndarray, h: np.ndarray, t_s: float, rng: np.random.Generator) -> None:
        age = t_s - self.ignite_s
        e, n = self.centre_en
        r = self.radius_m(t_s)
        # Smoke first (under the flames): puffs emitted every 0.4 s drift downwind and widen.
        puffs = []
        j = 0
        while age - j * 0.4 >= 0 and j < 30:
            puff_age = age - j * 0.4
            if puff_age <= 12.0:
                puffs.append((e + self.wind_en_m_s[0] * puff_age, n + self.wind_en_m_s[1] * puff_age,
                              r * 0.8 + 0.45 * puff_age))
            j += 1
        if puffs:
            pts = _project(h, np.array([[p[0], p[1]] for p in puffs] + [[e, n], [e + 1.0, n]]))
            px_per_m = float(np.linalg.norm(pts[-1] - pts[-2]))
            radii = [max(1, int(p[2] * px_per_m)) for p in puffs]
            x0 = int(max(0, min(x - rr for (x, _), rr in zip(pts[:-2], radii))))
            y0 = int(max(0, min(y - rr for (_, y), rr in zip(pts[:-2], radii))))
            x1 = int(min(img.shape[1], max(x + rr for (x, _), rr in zip(pts[:-2], radii)) + 1))
            y1 = int(min(img.shape[0], max(y + rr for (_, y), rr in zip(pts[:-2], radii)) + 1))
            if x1 > x0 and y1 > y0:
                roi = img[y0:y1, x0:x1]
                overlay = roi.copy()
                for (cx, cy), rr in zip(pts[:-2], radii):
                    cv2.circle(overlay, (int(cx) - x0, int(cy) - y0), rr, (175, 178, 180), -1, cv2.LINE_AA)
                cv2.addWeighted(overlay, 0.45, roi, 0.55, 0, dst=roi)
        # Flames: jittered blobs, redrawn every frame so the flicker is real frame-to-frame change.
        centre = _project(h, np.array([[e, n], [e + 1.0, n]]))
        px_per_m = float(np.linalg.norm(centre[1] - centre[0]))
        c = centre[0]
        for _ in range(6):
            rr = r * rng.uniform(0.35, 0.8)
            off = rng.normal(0, r * 0.35, 2)
            colour = (int(rng.uniform(0, 40)), int(rng.uniform(90, 170)), int(rng.uniform(230, 255)))
            cv2.circle(img, (int(c[0] + off[0] * px_per_m), int(c[1] + off[1] * px_per_m)),
                       max(1, int(rr * px_per_m)), colour, -1, cv2.LINE_AA)
        core = r * rng.uniform(0.2, 0.45)
        cv2.circle(img, (int(c[0]), int(c[1])), max(1, int(core * px_per_m)), (120, 230, 255), -1, cv2.LINE_AA)
