"""Pixel -> ground position from pose, intrinsics and gimbal pitch, over flat ground.

Frames: world is local east/north/up metres around an anchor (a `LocalFrame`); the camera uses
OpenCV axes (x right, y down, z forward); yaw is clockwise from north; gimbal pitch is negative
below the horizon (-90 = nadir). The gimbal is stabilised, so only the drone's yaw turns it.
"""
from __future__ import annotations

import math

import numpy as np

from common.geo import LocalFrame
from common.values import CameraModel, Pose

from .config import CameraConfig, GeolocationConfig


def rotation_cam_to_world(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Columns: the camera's x (right), y (down), z (forward) axes in east/north/up."""
    psi, th = math.radians(yaw_deg), math.radians(pitch_deg)
    forward = np.array([math.sin(psi) * math.cos(th), math.cos(psi) * math.cos(th), math.sin(th)])
    down = np.array([math.sin(psi) * math.sin(th), math.cos(psi) * math.sin(th), -math.cos(th)])
    right = np.cross(down, forward)
    return np.stack([right, down, forward], axis=1)


class Projector:
    """Maps full-resolution pixels of one frame to ground east/north metres in `frame`."""

    def __init__(self, pose: Pose, camera: CameraModel, cam_cfg: CameraConfig, geo_cfg: GeolocationConfig,
                 frame: LocalFrame) -> None:
        self.pose = pose
        self.frame = frame
        self.geo_cfg = geo_cfg
        if geo_cfg.ground_alt_msl_m is None:
            self.height_m = pose.alt_rel_m
        else:
            self.height_m = pose.alt_msl_m - geo_cfg.ground_alt_msl_m
        e, n = frame.to_en(pose.lat, pose.lon)
        self.centre = np.array([e, n, self.height_m])
        f = camera.focal_px
        k = np.array([[f, 0, camera.width_px / 2], [0, f, camera.height_px / 2], [0, 0, 1.0]])
        r = rotation_cam_to_world(pose.yaw_deg + cam_cfg.gimbal_yaw_offset_deg, cam_cfg.gimbal_pitch_deg)
        self._ray = r @ np.linalg.inv(k)  # pixel (u, v, 1) -> world ray direction
        self.focal_px = f
        # Ground->image homography (for sizing and drawing): K R^T [e1 e2 -C].
        a = np.array([[1.0, 0, -e], [0, 1.0, -n], [0, 0, -self.height_m]])
        h = k @ r.T @ a
        self.world_to_image = h / h[2, 2]
        self.image_to_world = np.linalg.inv(self.world_to_image)

    @property
    def valid(self) -> bool:
        return self.height_m > 1.0

    def ground_en(self, u: float, v: float) -> tuple[float, float] | None:
        """(east_m, north_m) where pixel (u, v) meets the ground; None above the horizon."""
        d = self._ray @ np.array([u, v, 1.0])
        if d[2] >= -1e-6 or not self.valid:
            return None
        s = self.height_m / -d[2]
        return float(self.centre[0] + s * d[0]), float(self.centre[1] + s * d[1])

    def ground_many(self, pts_uv: np.ndarray) -> np.ndarray:
        """Vectorised ground_en for an (N, 2) array; rows above the horizon are NaN."""
        pts = np.asarray(pts_uv, float).reshape(-1, 2)
        d = self._ray @ np.vstack([pts.T, np.ones(len(pts))])
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(d[2] < -1e-6, self.height_m / -d[2], np.nan)
        return np.stack([self.centre[0] + s * d[0], self.centre[1] + s * d[1]], axis=1)

    def m_per_px(self, u: float, v: float) -> float:
        """Ground metres per pixel at (u, v): sqrt of the local area scale."""
        p = self.ground_many(np.array([[u, v], [u + 1, v], [u, v + 1]]))
        if np.isnan(p).any():
            return float("nan")
        a, b = p[1] - p[0], p[2] - p[0]
        return float(math.sqrt(abs(a[0] * b[1] - a[1] * b[0])))

    def latlon(self, east_m: float, north_m: float) -> tuple[float, float]:
        return self.frame.to_latlon(east_m, north_m)

    def error_m(self, u: float, v: float) -> float:
        """1-sigma-ish horizontal error radius of ground_en(u, v) from GPS, attitude and altitude."""
        d = self._ray @ np.array([u, v, 1.0])
        d = d / np.linalg.norm(d)
        sin_graze = max(0.1, -d[2])
        slant = self.height_m / sin_graze
        g = self.geo_cfg
        att = slant * math.tan(math.radians(g.attitude_error_deg)) / sin_graze
        alt = g.alt_error_m * math.sqrt(max(0.0, 1 - sin_graze ** 2)) / sin_graze
        return float(math.sqrt(g.gps_error_m ** 2 + att ** 2 + alt ** 2))


def pixel_to_latlon(pose: Pose, u: float, v: float, camera: CameraModel, cam_cfg: CameraConfig | None = None,
                    geo_cfg: GeolocationConfig | None = None) -> tuple[float, float, float] | None:
    """(lat, lon, error_m) of pixel (u, v) in a full-resolution frame taken at `pose`.

    >>> from common.values import Pose, CameraModel
    >>> pose = Pose(0.0, 32.0, 119.58, 60.0, 70.0)
    >>> lat, lon, err = pixel_to_latlon(pose, 960, 540, CameraModel())
    >>> round(lat, 6), round(lon, 6), round(err, 1)
    (32.0, 119.58, 2.3)
    """
    cam_cfg = cam_cfg or CameraConfig(width_px=camera.width_px, height_px=camera.height_px, hfov_deg=camera.hfov_deg)
    geo_cfg = geo_cfg or GeolocationConfig()
    proj = Projector(pose, camera, cam_cfg, geo_cfg, LocalFrame(pose.lat, pose.lon))
    en = proj.ground_en(u, v)
    if en is None:
        return None
    lat, lon = proj.latlon(*en)
    return lat, lon, proj.error_m(u, v)
