"""Fire: bright saturated orange-yellow pixels that flicker and stay in one place on the ground.

Colour alone is not enough (red roofs, orange tarps, yellow cars), so a colour region becomes a
flame only after `window_frames` frames in which
- a large share of its pixels change from one frame to the next (flames flicker at 2-10 Hz;
  the previous mask is warped by ego-motion first, so camera motion is not flicker), and
- its mean colour swings (mean |change| of the green level >= `min_colour_swing`), and
- its centroid, after ego-motion, drifts less than `max_drift_m` (a yellow car drives on).
A grey, low-saturation region spreading next to the flame (smoke) raises the confidence.
At 30 frames/s the default window of 5 frames reports a fire ~170 ms after it shows.
"""
from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..config import FireConfig
from .base import Blob

_KERNEL5 = np.ones((5, 5), np.uint8)
_KERNEL3 = np.ones((3, 3), np.uint8)


@dataclass
class _Candidate:
    key: str
    x: float
    y: float
    bbox: tuple[int, int, int, int]
    area: int
    drift_px: np.ndarray = field(default_factory=lambda: np.zeros(2))
    change: deque = field(default_factory=lambda: deque(maxlen=12))
    green: deque = field(default_factory=lambda: deque(maxlen=12))
    seen_t: float = 0.0
    hits: int = 0
    confirmed: bool = False


class FireDetector:
    def __init__(self, cfg: FireConfig) -> None:
        self.cfg = cfg
        self._prev_mask: np.ndarray | None = None
        self._cands: list[_Candidate] = []
        self._ids = itertools.count(1)
        self.mask: np.ndarray | None = None  # this frame's flame mask (for excluding from motion)
        self.last_metrics: list[tuple[str, float, float, int]] = []

    def reset(self) -> None:
        self._prev_mask = None
        self._cands.clear()

    @property
    def candidate_centres(self) -> list[tuple[float, float]]:
        """Centres (colour px) of regions confirmed as flames at some point."""
        return [(cd.x, cd.y) for cd in self._cands if cd.confirmed]

    def update(self, bgr: np.ndarray, h_prev_to_cur: np.ndarray | None, t_s: float,
               m_per_px: Callable[[float, float], float]) -> list[Blob]:
        c = self.cfg
        hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
        mask = cv2.inRange(hsv, (c.hue_range[0], c.min_saturation, c.min_value), (c.hue_range[1], 255, 255))
        self.mask = mask
        prev = self._prev_mask
        self._prev_mask = mask
        if h_prev_to_cur is None:
            self._cands.clear()
            prev = None
        hgt, wid = mask.shape
        prev_seen = None  # where the warped previous mask holds data (not ground just come into view)
        if prev is not None:
            prev = cv2.warpPerspective(prev, h_prev_to_cur, (wid, hgt), flags=cv2.INTER_NEAREST)
            prev_seen = cv2.warpPerspective(np.full((hgt, wid), 255, np.uint8), h_prev_to_cur, (wid, hgt),
                                            flags=cv2.INTER_NEAREST, borderValue=0)
        if not cv2.countNonZero(mask):
            self._cands.clear()
            return []
        n, _labels, stats, centroids = cv2.connectedComponentsWithStats(cv2.dilate(mask, _KERNEL5), connectivity=8)
        # Carry candidates into this frame's view.
        if h_prev_to_cur is not None and self._cands:
            pts = np.array([[[cd.x, cd.y]] for cd in self._cands], np.float64)
            moved = cv2.perspectiveTransform(pts, h_prev_to_cur).reshape(-1, 2)
            for cd, (x, y) in zip(self._cands, moved):
                cd.x, cd.y = float(x), float(y)
        matched: list[_Candidate] = []
        free = list(self._cands)
        for i in range(1, n):
            x, y, w, h, _ = stats[i]
            area = int(cv2.countNonZero(mask[y:y + h, x:x + w]))
            if area < c.min_area_px:
                continue
            cx, cy = centroids[i]
            gate = max(5.0, 0.75 * max(w, h))
            best = min(free, key=lambda cd: (cd.x - cx) ** 2 + (cd.y - cy) ** 2, default=None)
            if best is not None and (best.x - cx) ** 2 + (best.y - cy) ** 2 <= gate ** 2:
                free.remove(best)
                step = (cx - best.x, cy - best.y)
                best.drift_px += step
                cand = best
            else:
                cand = _Candidate(f"fire{next(self._ids)}", cx, cy, (x, y, w, h), area)
            cand.x, cand.y, cand.bbox, cand.area = float(cx), float(cy), (int(x), int(y), int(w), int(h)), area
            cand.seen_t = t_s
            cand.hits += 1
            # Mean green of the flame pixels: flames swing between orange and yellow frame to frame.
            # Inside the rim where there is an inside: a rigid yellow thing's rim pixels blend
            # with the ground differently as it moves by fractions of a pixel, and swung the mean.
            roi_mask = mask[y:y + h, x:x + w]
            inner = cv2.erode(roi_mask, _KERNEL3)
            cand.green.append(cv2.mean(bgr[y:y + h, x:x + w],
                                       mask=inner if cv2.countNonZero(inner) >= c.min_area_px else roi_mask)[1])
            if prev is not None and best is cand:
                # Compare with the previous mask shifted by the region's own motion, so a rigid
                # orange thing sliding across the view (a car) is not taken for flicker.
                dx, dy = int(round(step[0])), int(round(step[1]))
                px0, py0 = x - dx, y - dy
                if 0 <= px0 and 0 <= py0 and px0 + w <= wid and py0 + h <= hgt:
                    roi_now = mask[y:y + h, x:x + w]
                    # Only ground the previous frame saw counts: the band just come into view is
                    # empty in the warped previous mask, and a yellow car sliding in over the
                    # frame edge by a red roof "flickered" there into a false fire.
                    seen = cv2.bitwise_and(prev_seen[y:y + h, x:x + w], prev_seen[py0:py0 + h, px0:px0 + w])
                    seen_area = cv2.countNonZero(cv2.bitwise_and(roi_now, seen))
                    if seen_area >= area / 2:
                        changed = cv2.countNonZero(cv2.bitwise_and(
                            cv2.bitwise_xor(roi_now, prev[py0:py0 + h, px0:px0 + w]), seen))
                        # ...and unshifted: a static region whose centroid jitters is not flicker either.
                        in_place = cv2.countNonZero(cv2.bitwise_and(cv2.bitwise_xor(roi_now, prev[y:y + h, x:x + w]),
                                                                    seen))
                        cand.change.append(min(changed, in_place) / max(seen_area, 1))
            matched.append(cand)
        self._cands = matched
        out: list[Blob] = []
        self.last_metrics = []
        for cd in matched:
            if len(cd.change) < c.window_frames - 1:
                continue
            window = list(cd.change)[-(c.window_frames - 1):]
            flicker = float(np.median(window))
            greens = list(cd.green)[-c.window_frames:]
            colour_swing = float(np.mean(np.abs(np.diff(greens)))) if len(greens) > 1 else 0.0
            mpp = m_per_px(cd.x, cd.y)
            drift_m = float(np.linalg.norm(cd.drift_px)) * (mpp if mpp > 0 else 0.0)
            self.last_metrics.append((cd.key, flicker, drift_m, round(colour_swing, 1)))
            bx, by, bw, bh = cd.bbox
            # Evidence gathers while a region is cut by the frame edge, but slivers at the edge
            # change for reasons of their own (the view sliding over them).
            cut_edges = (bx <= 0) + (by <= 0) + (bx + bw >= wid) + (by + bh >= hgt)
            # A large flame entering across one edge is believed; slivers and corners are not.
            whole = cut_edges == 0 or (cut_edges == 1 and cd.area >= 5 * c.min_area_px)
            if whole and flicker >= c.min_flicker and colour_swing >= c.min_colour_swing and drift_m <= c.max_drift_m:
                confidence = float(min(0.99, 0.5 + 0.5 * min(1.0, flicker / (2 * c.min_flicker))
                                       * min(1.0, cd.hits / (3 * c.window_frames))))
                cd.confirmed = True
                out.append(Blob("fire", cd.x, cd.y, cd.bbox, cd.area, confidence=confidence, key=cd.key))
        return out
