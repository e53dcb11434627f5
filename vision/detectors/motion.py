"""Moving objects after ego-motion compensation, sized on the ground into people and vehicles.

Three-frame differencing: the current frame is compared with the frames gap_s and 2*gap_s ago,
each warped into the current view by the accumulated ego-motion homography. A pixel is moving
only if it differs from both (min of the two differences > diff_threshold), which keeps where
the object is now and drops where it was. Blobs are then sized in metres (from the ground
projection, or an assumed altitude without telemetry) and kept only if person- or vehicle-sized;
anything else (misregistration along a roof edge, smoke) is dropped.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable

import cv2
import numpy as np

from ..config import MotionConfig
from .base import Blob

_KERNEL3 = np.ones((3, 3), np.uint8)


class MotionDetector:
    def __init__(self, cfg: MotionConfig) -> None:
        self.cfg = cfg
        self._history: deque[list] = deque()  # [t_s, gray, H_to_current]

    def reset(self) -> None:
        self._history.clear()

    def _pick(self, target_t: float, tol_s: float) -> list | None:
        best = min(self._history, key=lambda e: abs(e[0] - target_t), default=None)
        if best is None or abs(best[0] - target_t) > tol_s:
            return None
        return best

    def update(self, gray: np.ndarray, h_prev_to_cur: np.ndarray | None, t_s: float,
               m_per_px: Callable[[float, float], float], exclude: np.ndarray | None = None) -> list[Blob]:
        """Blobs moving in `gray` (work resolution, lightly blurred). `m_per_px(x, y)` sizes them."""
        if h_prev_to_cur is None:
            self._history.clear()  # the chain of homographies is broken; start over
        else:
            for entry in self._history:
                entry[2] = h_prev_to_cur @ entry[2]
        gap = self.cfg.gap_s
        while self._history and self._history[0][0] < t_s - 2 * gap - 0.25:
            self._history.popleft()
        ref1 = self._pick(t_s - gap, gap / 2)
        ref2 = self._pick(t_s - 2 * gap, gap / 2)
        self._history.append([t_s, gray, np.eye(3)])
        if ref1 is None or ref2 is None or ref1 is ref2:
            return []
        hgt, wid = gray.shape
        valid = np.zeros_like(gray)
        corners = np.array([[[0, 0]], [[wid, 0]], [[wid, hgt]], [[0, hgt]]], np.float64)
        diffs = []
        polys = []
        for _t, old, h in (ref1, ref2):
            warped = cv2.warpPerspective(old, h, (wid, hgt), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            diffs.append(cv2.absdiff(gray, warped))
            polys.append(cv2.perspectiveTransform(corners, h).reshape(-1, 2).astype(np.int32))
        cv2.fillConvexPoly(valid, polys[0], 255)
        other = np.zeros_like(gray)
        cv2.fillConvexPoly(other, polys[1], 255)
        cv2.bitwise_and(valid, other, dst=valid)
        cv2.erode(valid, _KERNEL3, dst=valid, iterations=3)
        moving = cv2.min(diffs[0], diffs[1])
        _, mask = cv2.threshold(moving, self.cfg.diff_threshold, 255, cv2.THRESH_BINARY)
        cv2.bitwise_and(mask, valid, dst=mask)
        if exclude is not None:
            cv2.bitwise_and(mask, cv2.bitwise_not(exclude), dst=mask)
        joined = cv2.dilate(mask, _KERNEL3)
        n, _labels, stats, centroids = cv2.connectedComponentsWithStats(joined, connectivity=8)
        blobs: list[Blob] = []
        c = self.cfg
        for i in range(1, n):
            x, y, w, h, _area = stats[i]
            area = int(cv2.countNonZero(mask[y:y + h, x:x + w]))
            if area < 2:
                continue
            cx, cy = centroids[i]
            mpp = m_per_px(cx, cy)
            if not mpp > 0:
                continue
            # Undo the one-pixel dilation when measuring extent.
            long_m = max(w - 2, 1) * mpp if w >= h else max(h - 2, 1) * mpp
            area_m2 = area * mpp * mpp
            if long_m <= c.person_max_len_m and c.person_area_m2[0] <= area_m2 <= c.person_area_m2[1]:
                kind = "person"
            elif c.vehicle_len_m[0] <= long_m <= c.vehicle_len_m[1] and c.vehicle_area_m2[0] <= area_m2 <= c.vehicle_area_m2[1]:
                kind = "vehicle"
            else:
                continue
            blobs.append(Blob(kind, float(cx), float(cy), (int(x), int(y), int(w), int(h)), area, long_m, area_m2))
        return blobs
