"""The synthetic gimbal camera: renders a scene from a Pose and reports what it truly shows.

Conventions (shared with vision/geolocate.py, implemented independently so tests cross-check):
world is local east/north/up metres; camera axes are OpenCV's (x right, y down, z forward);
yaw is clockwise from north, gimbal pitch is degrees below the horizon as a negative number
(-90 = nadir); the gimbal is stabilised, so body roll/pitch do not tilt the image.

What telemetry does not know is added on purpose: a shake of a few tenths of a degree at 1-6 Hz,
a slowly wandering GPS bias of the rendered position, exposure drift and sensor noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from common.values import CameraModel, IncidentKind, Pose

from .scene import Scene


@dataclass(frozen=True, slots=True)
class TruthItem:
    """One incident the frame really shows. `since_s` is when its condition began (ignition,
    the crowd reaching its head count, the car coming to rest, the zone being entered)."""

    kind: IncidentKind
    lat: float
    lon: float
    since_s: float
    first_visible_s: float
    name: str


def camera_rotation(yaw_deg: float, pitch_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """3x3 matrix whose columns are the camera x, y, z axes in world east/north/up."""
    psi, th = math.radians(yaw_deg), math.radians(pitch_deg)
    z = np.array([math.sin(psi) * math.cos(th), math.cos(psi) * math.cos(th), math.sin(th)])
    up = np.array([-math.sin(psi) * math.sin(th), -math.cos(psi) * math.sin(th), math.cos(th)])
    y = -up
    x = np.cross(y, z)
    if roll_deg:
        phi = math.radians(roll_deg)
        x, y = math.cos(phi) * x + math.sin(phi) * y, -math.sin(phi) * x + math.cos(phi) * y
    return np.stack([x, y, z], axis=1)


def _point_in_polygon(e: float, n: float, poly: list[tuple[float, float]]) -> bool:
    inside = False
    j = len(poly) - 1
    for i in range(len(poly)):
        (xi, yi), (xj, yj) = poly[i], poly[j]
        if (yi > n) != (yj > n) and e < (xj - xi) * (n - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


class SyntheticCamera:
    """Renders `scene` as seen by `camera` at a Pose; `visible_truth` lists incidents in view."""

    def __init__(self, scene: Scene, camera: CameraModel = CameraModel(640, 360, 82.0), *,
                 gimbal_pitch_deg: float = -90.0, shake_deg: float = 0.3, gps_bias_m: float = 0.6,
                 noise_sigma: float = 3.0, seed: int = 0) -> None:
        if not -90.0 <= gimbal_pitch_deg <= -30.0:
            raise ValueError(f"gimbal_pitch_deg {gimbal_pitch_deg} out of range [-90, -30] (horizon in view)")
        self.scene = scene
        self.camera = camera
        self.gimbal_pitch_deg = gimbal_pitch_deg
        self.shake_deg = shake_deg
        self.gps_bias_m = gps_bias_m
        self.texture = scene.texture()
        rng = np.random.default_rng(seed)
        self._phases = rng.uniform(0, 2 * math.pi, size=12)
        self._seed = seed
        w, h = camera.width_px, camera.height_px
        f = camera.focal_px
        self.k = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
        # Sensor noise: a few precomputed +/- fields, cycled (drawing fresh noise costs more than the warp).
        self._noise = []
        for _ in range(4):
            nse = rng.normal(0, noise_sigma, size=(h, w, 1)).astype(np.float32)
            self._noise.append((np.clip(nse, 0, 255).astype(np.uint8).repeat(3, 2),
                                np.clip(-nse, 0, 255).astype(np.uint8).repeat(3, 2)))
        self._first_visible: dict[tuple[str, str], float] = {}
        self._zone_entry: dict[str, float] = {}
        self._zones_en = [[scene.en(lat, lon) for lat, lon in z] for z in scene.restricted_zones]

    # --- geometry -------------------------------------------------------------------------
    def _shake(self, t_s: float) -> tuple[float, float, float]:
        p = self._phases
        s = self.shake_deg
        d_yaw = s * (0.6 * math.sin(2 * math.pi * 1.3 * t_s + p[0]) + 0.4 * math.sin(2 * math.pi * 4.1 * t_s + p[1]))
        d_pitch = s * (0.6 * math.sin(2 * math.pi * 1.7 * t_s + p[2]) + 0.4 * math.sin(2 * math.pi * 5.3 * t_s + p[3]))
        d_roll = s * (0.6 * math.sin(2 * math.pi * 2.1 * t_s + p[4]) + 0.4 * math.sin(2 * math.pi * 6.2 * t_s + p[5]))
        return d_yaw, d_pitch, d_roll

    def _true_position(self, pose: Pose, t_s: float) -> np.ndarray:
        e, n = self.scene.en(pose.lat, pose.lon)
        p = self._phases
        b = self.gps_bias_m
        e += b * math.sin(2 * math.pi * t_s / 40.0 + p[6])
        n += b * math.cos(2 * math.pi * t_s / 55.0 + p[7])
        return np.array([e, n, pose.alt_rel_m])

    def world_to_image(self, pose: Pose, t_s: float) -> np.ndarray:
        """Homography from ground (east_m, north_m, 1) to pixels for the rendered frame at t_s."""
        d_yaw, d_pitch, d_roll = self._shake(t_s)
        r = camera_rotation(pose.yaw_deg + d_yaw, self.gimbal_pitch_deg + d_pitch, d_roll)
        c = self._true_position(pose, t_s)
        a = np.array([[1.0, 0, -c[0]], [0, 1.0, -c[1]], [0, 0, -c[2]]])
        h = self.k @ r.T @ a
        return h / h[2, 2]

    # --- rendering ------------------------------------------------------------------------
    def render(self, pose: Pose, t_s: float) -> np.ndarray:
        """The BGR frame at stream time t_s from (telemetry) pose; shake and bias included."""
        if pose.alt_rel_m <= 1.0:
            raise ValueError(f"pose altitude {pose.alt_rel_m} m is too low to render the ground")
        w, h = self.camera.width_px, self.camera.height_px
        h_world = self.world_to_image(pose, t_s)
        h_tex = h_world @ self.texture.tex_from_world()
        frame = cv2.warpPerspective(self.texture.image, h_tex, (w, h), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=(60, 100, 70))
        rng = np.random.default_rng((self._seed, int(t_s * 1000)))
        inv = np.linalg.inv(h_world)
        corners = cv2.perspectiveTransform(np.array([[[0, 0]], [[w, 0]], [[w, h]], [[0, h]]], np.float64), inv).reshape(-1, 2)
        lo, hi = corners.min(0) - 30, corners.max(0) + 30
        for actor in self.scene.actors:
            if not actor.active(t_s):
                continue
            e, n = actor.position_en(t_s)
            if actor.kind == "crowd" or lo[0] <= e <= hi[0] and lo[1] <= n <= hi[1]:
                actor.draw(frame, h_world, t_s, rng)
        # Exposure drift and sensor noise.
        gain = 1.0 + 0.03 * math.sin(2 * math.pi * t_s / 9.0 + self._phases[8])
        if abs(gain - 1.0) > 0.005:
            frame = cv2.convertScaleAbs(frame, alpha=gain)
        pos, neg = self._noise[int(t_s * 997) % len(self._noise)]
        cv2.add(frame, pos, dst=frame)
        cv2.subtract(frame, neg, dst=frame)
        return frame

    # --- ground truth ---------------------------------------------------------------------
    def _in_view(self, h_world: np.ndarray, e: float, n: float, margin_px: float = 0.0) -> bool:
        p = h_world @ np.array([e, n, 1.0])
        if p[2] <= 0:
            return False
        u, v = p[0] / p[2], p[1] / p[2]
        w, h = self.camera.width_px, self.camera.height_px
        return margin_px <= u < w - margin_px and margin_px <= v < h - margin_px

    def visible_truth(self, pose: Pose, t_s: float) -> list[TruthItem]:
        """Incidents whose place is in this frame and whose condition holds at t_s.

        Call once per rendered frame: first-visible times and zone entries are remembered.
        """
        h_world = self.world_to_image(pose, t_s)
        out: list[TruthItem] = []

        def emit(kind: IncidentKind, name: str, e: float, n: float, since: float) -> None:
            if t_s < since or not self._in_view(h_world, e, n):
                return
            key = (kind.value, name)
            first = self._first_visible.setdefault(key, t_s)
            lat, lon = self.scene.latlon(e, n)
            out.append(TruthItem(kind, lat, lon, since, first, name))

        movers = []
        for actor in self.scene.actors:
            spec = actor.incident_since_s()
            if spec is not None:
                kind, since = spec
                emit(kind, actor.name, *actor.position_en(t_s), since)
            if actor.kind in ("car", "person"):
                movers.append(actor)
            elif actor.kind == "crowd":
                movers.extend(actor.members)
        for mover in movers:
            if not mover.active(t_s) or not self._zones_en:
                continue
            e, n = mover.position_en(t_s)
            if any(_point_in_polygon(e, n, z) for z in self._zones_en):
                since = self._zone_entry.setdefault(mover.name, t_s)
                emit(IncidentKind.INTRUSION, mover.name, e, n, since)
        return out
