"""Frame-to-frame camera motion: sparse corners tracked with pyramidal Lucas-Kanade at reduced
resolution, then a RANSAC homography (the ground is flat, so one homography explains the view
change; moving cars and people are outliers).
"""
from __future__ import annotations

import cv2
import numpy as np

from .config import EgoMotionConfig


class EgoMotion:
    """Feed grey frames at ego resolution; get the homography previous -> current, or None when
    the frame cannot be registered (blur, featureless ground, a cut in the video)."""

    def __init__(self, cfg: EgoMotionConfig) -> None:
        self.cfg = cfg
        self._prev: np.ndarray | None = None
        self.inliers = 0

    def reset(self) -> None:
        self._prev = None

    def update(self, gray: np.ndarray) -> np.ndarray | None:
        prev, self._prev = self._prev, gray
        if prev is None or prev.shape != gray.shape:
            return None
        pts = cv2.goodFeaturesToTrack(prev, maxCorners=self.cfg.max_features, qualityLevel=0.01, minDistance=8,
                                      blockSize=5)
        if pts is None or len(pts) < self.cfg.min_inliers:
            self.inliers = 0
            return None
        nxt, status, _err = cv2.calcOpticalFlowPyrLK(prev, gray, pts, None, winSize=(13, 13), maxLevel=3,
                                                     criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
        ok = status.ravel() == 1
        if ok.sum() < self.cfg.min_inliers:
            self.inliers = 0
            return None
        h, mask = cv2.findHomography(pts[ok], nxt[ok], cv2.RANSAC, self.cfg.ransac_px)
        self.inliers = int(mask.sum()) if mask is not None else 0
        if h is None or self.inliers < self.cfg.min_inliers:
            return None
        return h
