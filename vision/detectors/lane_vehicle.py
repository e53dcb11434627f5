"""Vehicles standing on a traffic lane, found by appearance and kept by their place on the ground.

Motion finds a car that brakes in front of the camera; a car that stopped before any drone came
by never moves while watched. This detector needs no motion: inside the road lanes (map
polygons, `stopped_vehicle.road_zones`) the tarmac is one flat grey, so anything that differs
from the lane's median colour by `lane_contrast`, survives an opening wider than a lane marking
or a person (`lane_open_m`), and measures like a car (`lane_vehicle_len_m` x
`lane_vehicle_width_m`, filling most of its rotated box) is a vehicle candidate.

Candidates are kept on the ground plane (`GroundPersistence`): one that stays within
`still_radius_m` of the same place for `stationary_s` - across frames, or across passes minutes
apart - and was seen there without a break for `lane_min_visit_s` at least once, is a stopped
vehicle. Moving traffic never stays in one
place; a candidate whose place is in view but empty for `lane_drop_after` looks is forgotten.
Parked cars stand beside the lanes, roofs and trees are kept off them by the map: neither is
ever inside the lane mask.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import cv2
import numpy as np
from shapely.geometry import Point, Polygon
from shapely.prepared import prep

from ..config import StoppedVehicleConfig
from .base import Sighting


@dataclass
class GroundCandidate:
    """Something seen at one place on the ground: first and last sighting, and how often."""

    id: int
    east_m: float
    north_m: float
    first_t: float
    last_t: float
    hits: int = 1
    misses: int = 0
    bbox: tuple[int, int, int, int] = (0, 0, 1, 1)
    x: float = 0.0
    y: float = 0.0
    visit_start_t: float = 0.0  # start of the current run of sightings without a gap
    longest_visit_s: float = 0.0  # longest such run: moving traffic never holds one place for long


class GroundPersistence:
    """Candidates matched by ground position: the same thing at the same place over time."""

    def __init__(self, radius_m: float, drop_after: int, forget_s: float, visit_gap_s: float = 1.0) -> None:
        self.radius_m = radius_m
        self.visit_gap_s = visit_gap_s
        self.drop_after = drop_after
        self.forget_s = forget_s
        self.candidates: list[GroundCandidate] = []
        self._ids = itertools.count(1)

    def update(self, seen: list[tuple[float, float, float, float, tuple[int, int, int, int]]], t_s: float,
               in_view) -> list[GroundCandidate]:
        """seen: (east_m, north_m, x, y, bbox) this look; in_view(e, n): could it be seen now?
        Returns the candidates seen in this look."""
        free = list(self.candidates)
        out = []
        for e, n, x, y, bbox in seen:
            best = min(free, key=lambda c: math.hypot(c.east_m - e, c.north_m - n), default=None)
            if best is not None and math.hypot(best.east_m - e, best.north_m - n) <= self.radius_m:
                free.remove(best)
                c = best
                c.hits += 1
                # A slow mean: the place, not this frame's geolocation noise.
                c.east_m += (e - c.east_m) / min(c.hits, 10)
                c.north_m += (n - c.north_m) / min(c.hits, 10)
                if t_s - c.last_t > self.visit_gap_s:
                    c.visit_start_t = t_s
            else:
                c = GroundCandidate(next(self._ids), e, n, t_s, t_s, visit_start_t=t_s)
                self.candidates.append(c)
            c.last_t, c.misses, c.bbox, c.x, c.y = t_s, 0, bbox, x, y
            c.longest_visit_s = max(c.longest_visit_s, t_s - c.visit_start_t)
            out.append(c)
        keep = []
        for c in self.candidates:
            if c in free and in_view(c.east_m, c.north_m):
                c.misses += 1
                if c.misses >= self.drop_after:
                    continue  # its place is in view and empty: it left
            if t_s - c.last_t > self.forget_s:
                continue
            keep.append(c)
        self.candidates = keep
        return out


class LaneVehicleDetector:
    def __init__(self, cfg: StoppedVehicleConfig, road_zones_en: list[Polygon]) -> None:
        self.cfg = cfg
        self.set_lanes(road_zones_en)
        self.ground = GroundPersistence(cfg.still_radius_m, cfg.lane_drop_after, cfg.lane_forget_s)
        self._last_look_t = -math.inf

    def set_lanes(self, road_zones_en: list[Polygon]) -> None:
        # Only the lanes proper: a car parked at the kerb must not reach in with its edge.
        lanes = [z.buffer(-self.cfg.lane_margin_m) for z in road_zones_en]
        self.lanes = [z for z in lanes if not z.is_empty]
        self._prepared = [prep(z) for z in self.lanes]

    def update(self, work_bgr: np.ndarray, ground_to_work: np.ndarray, footprint_en: Polygon, t_s: float,
               m_per_px, to_ground) -> list[Sighting]:
        """One look at the lanes in view; returns stopped-vehicle sightings."""
        c = self.cfg
        if not self.lanes:
            return []
        if t_s - self._last_look_t < c.lane_every_s:
            return []
        self._last_look_t = t_s
        h, w = work_bgr.shape[:2]
        mask = np.zeros((h, w), np.uint8)
        for lane in self.lanes:
            part = lane.intersection(footprint_en)
            for poly in getattr(part, "geoms", [part]):
                if poly.is_empty or not hasattr(poly, "exterior"):
                    continue
                pts = np.array(poly.exterior.coords, np.float64).reshape(-1, 1, 2)
                px = cv2.perspectiveTransform(pts, ground_to_work).reshape(-1, 2)
                cv2.fillPoly(mask, [np.round(px).astype(np.int32)], 255)
        inner = footprint_en.buffer(-3.0)
        in_view = (lambda e, n: inner.contains(Point(e, n))) if not inner.is_empty else (lambda e, n: False)
        if cv2.countNonZero(mask) < 50:
            self.ground.update([], t_s, in_view)
            return []
        # Only the lanes' bounding box is looked at; the tarmac colour from every 4th lane pixel.
        x0, y0, roi_w, roi_h = cv2.boundingRect(mask)
        roi, roi_mask = work_bgr[y0:y0 + roi_h, x0:x0 + roi_w], mask[y0:y0 + roi_h, x0:x0 + roi_w]
        ref = np.median(roi[roi_mask > 0][::4], axis=0)
        if float(ref.max() - ref.min()) > c.lane_max_tint:
            # Not tarmac under the mapped lanes (a road map that does not fit the ground, or
            # the frame over something else): judging "odd" against it would flag the ground.
            return []
        diff = cv2.absdiff(roi, np.full_like(roi, np.clip(ref, 0, 255).astype(np.uint8))).max(axis=2)
        odd = ((diff > c.lane_contrast).astype(np.uint8) * 255) & roi_mask
        mpp = m_per_px(w / 2, h / 2)
        if not mpp > 0:
            return []
        k = max(3, int(round(c.lane_open_m / mpp)) | 1)
        odd = cv2.morphologyEx(odd, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        n, labels, stats, centroids = cv2.connectedComponentsWithStats(odd, connectivity=8)
        seen = []
        for i in range(1, n):
            x, y, bw, bh, area = stats[i]
            pts = np.column_stack(np.nonzero(labels[y:y + bh, x:x + bw] == i))[:, ::-1].astype(np.float32)
            x, y = x + x0, y + y0  # ROI -> work px
            cx, cy = centroids[i][0] + x0, centroids[i][1] + y0
            m = m_per_px(cx, cy)
            if not m > 0 or area * m * m < 2.0:
                continue
            (_, _), (rw, rh), _ = cv2.minAreaRect(pts)
            long_m, short_m = max(rw, rh) * m, min(rw, rh) * m
            fill = area / max(1.0, rw * rh)
            if not (c.lane_vehicle_len_m[0] <= long_m <= c.lane_vehicle_len_m[1]
                    and c.lane_vehicle_width_m[0] <= short_m <= c.lane_vehicle_width_m[1] and fill >= 0.6):
                continue
            g = to_ground(cx, cy)
            if g is None or not any(z.contains(Point(g)) for z in self._prepared):
                continue
            seen.append((g[0], g[1], float(cx), float(cy), (int(x), int(y), int(bw), int(bh))))
        out = []
        for cand in self.ground.update(seen, t_s, in_view):
            stood_s = cand.last_t - cand.first_t
            # Standing for stationary_s in all (over one pass or several), and held still through
            # one unbroken look of lane_min_visit_s: two cars driving over the same spot minutes
            # apart, each seen there for a frame or two, are not one car standing.
            if stood_s < c.stationary_s or cand.longest_visit_s < c.lane_min_visit_s:
                continue
            confidence = min(0.95, 0.6 + 0.02 * (stood_s - c.stationary_s))
            out.append(Sighting("stopped_vehicle", f"lane{cand.id}", cand.x, cand.y, cand.bbox, confidence,
                                ground=(cand.east_m, cand.north_m), since_s=cand.first_t))
        return out
