"""Tracks of moving people and vehicles with stable ids, kept alive when they stop.

A track follows motion blobs (greedy nearest-neighbour in a gate of `gate_m`, after carrying
every track into the current view with the ego-motion homography). When its object stops, the
motion detector goes quiet; the track then coasts and is kept only while a template cut from
the full-resolution frame at its last sighting still matches there (`verify_score`). That is
how standing crowd members and stopped cars stay known. Positions are kept on the ground
(east/north metres) when telemetry exists, else in a stabilised image mosaic scaled to metres.
"""
from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from .config import TrackerConfig
from .detectors.base import Blob


def _core_contrast(patch: np.ndarray, bbox: tuple[int, int, int, int], scale: float) -> float:
    """|mean of the central object box - mean of the surrounding ring| of a template-sized patch."""
    ph, pw = patch.shape
    cw, ch = max(1, int(bbox[2] * scale * 0.6)), max(1, int(bbox[3] * scale * 0.6))
    x0, y0 = (pw - cw) // 2, (ph - ch) // 2
    core = patch[y0:y0 + ch, x0:x0 + cw]
    total = float(patch.sum(dtype=np.float64))
    core_sum = float(core.sum(dtype=np.float64))
    ring_n = patch.size - core.size
    if ring_n <= 0 or core.size == 0:
        return 0.0
    return abs(core_sum / core.size - (total - core_sum) / ring_n)


@dataclass(eq=False)  # a track is itself: value comparison (its whole history) made list.remove O(history)
class Track:
    id: int
    x: float  # work px in the current frame
    y: float
    bbox: tuple[int, int, int, int]
    born_t: float
    kind_votes: dict[str, int] = field(default_factory=lambda: {"person": 0, "vehicle": 0})
    hits: int = 1
    misses: int = 0
    last_motion_t: float = 0.0
    last_seen_t: float = 0.0
    history: deque = field(default_factory=lambda: deque(maxlen=900))  # (t, east_m, north_m)
    template: np.ndarray | None = None
    confirmed: bool = False
    max_speed_m_s: float = 0.0
    ground: tuple[float, float] | None = None
    travel_m: float = 0.0
    area_m2: float = 0.0  # of the last motion blob (a group walking together is one blob)
    speed_at_last_motion_m_s: float = 0.0  # a car cannot halt from speed between two frames

    @property
    def kind(self) -> str:
        return max(self.kind_votes, key=self.kind_votes.get)

    def speed_m_s(self, now_s: float, window_s: float = 1.0) -> float:
        if len(self.history) < 2:
            return 0.0
        t1, e1, n1 = self.history[-1]
        for t0, e0, n0 in reversed(self.history):
            if t1 - t0 >= window_s:
                return math.hypot(e1 - e0, n1 - n0) / (t1 - t0)
        return 0.0

    def still_since_s(self, radius_m: float) -> float:
        """Earliest time from which every position stayed within radius_m of the latest one."""
        if not self.history:
            return math.inf
        t_last, e1, n1 = self.history[-1]
        since = t_last
        for t, e, n in reversed(self.history):
            if math.hypot(e - e1, n - n1) > radius_m:
                break
            since = t
        return since


class Tracker:
    def __init__(self, cfg: TrackerConfig) -> None:
        self.cfg = cfg
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)
        self._frame_no = 0

    def reset(self) -> None:
        self.tracks.clear()

    def update(self, blobs: list[Blob], h_prev_to_cur: np.ndarray | None, t_s: float, full_gray_roi,
               scale: float, m_per_px, to_ground, size_wh: tuple[int, int]) -> list[Track]:
        """Advance all tracks to this frame.

        full_gray_roi(x0, y0, x1, y1) -> grey full-res crop; scale = full px per work px;
        m_per_px(x, y) and to_ground(x, y) -> (east_m, north_m) work in work px.
        """
        self._frame_no += 1
        cfg = self.cfg
        if h_prev_to_cur is None:
            self.tracks.clear()
            return []
        if self.tracks:
            pts = np.array([[[tr.x, tr.y]] for tr in self.tracks], np.float64)
            moved = cv2.perspectiveTransform(pts, h_prev_to_cur).reshape(-1, 2)
            for tr, (x, y) in zip(self.tracks, moved):
                tr.x, tr.y = float(x), float(y)
        # Nearest free track per blob (biggest blobs first), vectorised: real traffic footage
        # brings hundreds of blobs and tracks a frame.
        old = list(self.tracks)
        old_xy = np.array([[tr.x, tr.y] for tr in old], np.float64).reshape(-1, 2)
        free = np.ones(len(old), bool)
        matched: set[int] = set()
        for blob in sorted(blobs, key=lambda b: -b.area_px):
            mpp = m_per_px(blob.x, blob.y)
            gate_px = max(4.0, cfg.gate_m / mpp) if mpp > 0 else 8.0
            best = None
            if free.any():
                d2 = (old_xy[:, 0] - blob.x) ** 2 + (old_xy[:, 1] - blob.y) ** 2
                d2[~free] = np.inf
                i = int(np.argmin(d2))
                if d2[i] <= gate_px * gate_px:
                    best = i
            if best is not None:
                free[best] = False
                tr = old[best]
                tr.hits += 1
            else:
                tr = Track(next(self._ids), blob.x, blob.y, blob.bbox, born_t=t_s)
                self.tracks.append(tr)
            tr.x, tr.y, tr.bbox = blob.x, blob.y, blob.bbox
            tr.area_m2 = blob.area_m2
            tr.kind_votes[blob.kind] = tr.kind_votes.get(blob.kind, 0) + 1
            tr.last_motion_t = tr.last_seen_t = t_s
            tr.misses = 0
            matched.add(tr.id)
            if tr.hits % 3 == 1 or tr.template is None:
                tr.template = self._cut(full_gray_roi, tr, scale)
        width, height = size_wh
        keep: list[Track] = []
        for tr in self.tracks:
            if not (0 <= tr.x < width and 0 <= tr.y < height):
                continue  # left the view
            if tr.id not in matched:
                if not tr.confirmed:
                    if t_s - tr.last_motion_t > cfg.tentative_timeout_s:
                        continue
                elif self._frame_no % cfg.verify_every_frames == 0:
                    if self._verify(full_gray_roi, tr, scale, m_per_px):
                        tr.misses = 0
                        tr.last_seen_t = t_s
                    else:
                        tr.misses += 1
                        if tr.misses >= cfg.max_misses:
                            continue
            ground = to_ground(tr.x, tr.y)
            if ground is not None:
                if tr.history:
                    _, e0, n0 = tr.history[-1]
                    tr.travel_m += math.hypot(ground[0] - e0, ground[1] - n0) if tr.id in matched else 0.0
                tr.history.append((t_s, ground[0], ground[1]))
                tr.ground = ground
                tr.max_speed_m_s = max(tr.max_speed_m_s, tr.speed_m_s(t_s))
                if tr.id in matched:
                    tr.speed_at_last_motion_m_s = tr.speed_m_s(t_s, window_s=0.5)
            if not tr.confirmed and tr.hits >= cfg.confirm_hits and self._net_travel(tr) >= cfg.confirm_travel_m:
                tr.confirmed = True
            keep.append(tr)
        self.tracks = keep
        return [tr for tr in keep if tr.confirmed]

    @staticmethod
    def _net_travel(tr: Track) -> float:
        if len(tr.history) < 2:
            return 0.0
        _, e0, n0 = tr.history[0]
        _, e1, n1 = tr.history[-1]
        return math.hypot(e1 - e0, n1 - n0)

    @staticmethod
    def _cut(full_gray_roi, tr: Track, scale: float) -> np.ndarray | None:
        x, y, w, h = tr.bbox
        pad = max(w, h) * 0.5 + 1
        cx, cy = tr.x * scale, tr.y * scale
        half_w, half_h = (w / 2 + pad) * scale, (h / 2 + pad) * scale
        crop = full_gray_roi(int(cx - half_w), int(cy - half_h), int(cx + half_w) + 1, int(cy + half_h) + 1)
        if crop is None or crop.size == 0 or min(crop.shape) < 4:
            return None
        return crop

    def _verify(self, full_gray_roi, tr: Track, scale: float, m_per_px) -> bool:
        """Is the stopped object still where the track says? Template match in a small window."""
        tpl = tr.template
        if tpl is None:
            return False
        th, tw = tpl.shape
        mpp = m_per_px(tr.x, tr.y)
        search = int(max(3, (1.0 / mpp if mpp > 0 else 4) * scale)) + 2
        cx, cy = tr.x * scale, tr.y * scale
        x0, y0 = int(cx - tw / 2 - search), int(cy - th / 2 - search)
        roi = full_gray_roi(x0, y0, x0 + tw + 2 * search, y0 + th + 2 * search)
        if roi is None or roi.shape[0] < th or roi.shape[1] < tw or float(tpl.std()) < 2.0:
            return False
        res = cv2.matchTemplate(roi, tpl, cv2.TM_CCOEFF_NORMED)
        _, score, _, loc = cv2.minMaxLoc(res)
        if score < self.cfg.verify_score:
            return False
        # A match on textured ground (road markings, crop rows) is not the object: the object's
        # core must still stand out from its surroundings about as much as when it was cut.
        patch = roi[loc[1]:loc[1] + th, loc[0]:loc[0] + tw]
        if _core_contrast(patch, tr.bbox, scale) < 0.5 * _core_contrast(tpl, tr.bbox, scale):
            return False
        # Follow small creeping (a car rolling to a halt) by re-centring on the match.
        tr.x = (x0 + loc[0] + tw / 2) / scale
        tr.y = (y0 + loc[1] + th / 2) / scale
        return True
