"""Learned detection where appearance decides: smoke/fire and people from pretrained models.

The models are far too slow for every frame, so each runs on its own schedule (`every_s`, a few
times a second) and what it found is carried between its runs:

- `FireSmokeModel`: a frame is a hit when the model sees smoke >= `smoke_score`, or a fire box
  >= `fire_score` with support (smoke >= `support_smoke_score` in the frame, or a flame that the
  colour/flicker detector confirmed inside the box): the fire class alone also fires on a sunlit
  forest. A fire is reported on a hit frame once `min_hits` of the last `window` model frames
  were hits (the incident stage keeps it open between them).
- `PeopleModel`: people and vehicles from a COCO model. A person inside a vehicle box (a rider,
  a driver) is not a pedestrian. Positions are kept on the stabilised image mosaic (ego-motion),
  and each person is followed from model frame to model frame; a person is *standing* when
  their track is within `standing_max_move` box sizes of where it was `standing_window_s` ago. A crowd is `min_people` standing people within `crowd_radius_sizes`
  person-box sizes of their centre, held `crowd_hold_s`: no metres needed, so it works without
  telemetry; moving traffic and walkers never make one.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..config import FireModelConfig, PeopleModelConfig
from ..models import Detection, OnnxDetector
from .base import Sighting

VEHICLE_CLASSES = {"bicycle", "car", "motorbike", "bus", "train", "truck"}


def _union(boxes: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    return min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)


def _inside(p: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    return box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3]


def _to_work_bbox(box, scale: float) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (v / scale for v in box)
    return int(x0), int(y0), max(1, int(x1 - x0)), max(1, int(y1 - y0))


class FireSmokeModel:
    def __init__(self, detector: OnnxDetector, cfg: FireModelConfig) -> None:
        self.detector = detector
        self.cfg = cfg
        self._next_t = -1e9
        self._hits: deque[tuple[float, bool, list[Detection]]] = deque(maxlen=cfg.window)
        self._episode = 0
        self.runs = 0

    def due(self, t_s: float) -> bool:
        return t_s >= self._next_t

    def update(self, bgr_full: np.ndarray, t_s: float, flames_full: list[tuple[float, float]],
               scale: float) -> list[Sighting]:
        """Run the model if due; a fire sighting (work px) on model frames while the alarm holds."""
        c = self.cfg
        if not self.due(t_s):
            return []
        self._next_t = t_s + c.every_s
        self.runs += 1
        dets = self.detector.detect(bgr_full, min(c.smoke_score, c.fire_score, c.support_smoke_score))
        smoke = [d for d in dets if d.cls == "smoke"]
        max_smoke = max((d.score for d in smoke), default=0.0)
        found = [d for d in smoke if d.score >= c.smoke_score]
        found += [d for d in dets if d.cls == "fire" and d.score >= c.fire_score
                  and (max_smoke >= c.support_smoke_score or any(_inside(p, d.box) for p in flames_full))]
        if not any(h for _, h, _ in self._hits):
            self._episode += 1 if found else 0
        self._hits.append((t_s, bool(found), found))
        hits = [(t, ds) for t, h, ds in self._hits if h]
        if len(hits) < c.min_hits or not found:
            return []
        boxes = [d.box for d in found]
        x0, y0, x1, y1 = _union(boxes)
        bbox = _to_work_bbox((x0, y0, x1, y1), scale)
        conf = max(d.score for d in found)
        return [Sighting("fire", f"fmodel{self._episode}", (x0 + x1) / 2 / scale, (y0 + y1) / 2 / scale, bbox,
                         round(conf, 3), since_s=hits[0][0])]


@dataclass(slots=True)
class _Person:
    mx: float  # mosaic px (work scale)
    my: float
    size: float  # box size, work px
    box: tuple[float, float, float, float]  # current frame, full px


@dataclass(eq=False)
class _PersonTrack:
    """One person followed from model frame to model frame (one-to-one, nearest first)."""

    person: _Person
    born_t: float
    seen_t: float
    history: deque = field(default_factory=lambda: deque(maxlen=64))  # (t, mx, my)

    def standing(self, t_s: float, window_s: float, max_move: float) -> bool:
        """Seen for window_s and within max_move box sizes of where it was window_s ago."""
        if t_s - self.born_t < window_s:
            return False
        then = next((h for h in reversed(self.history) if h[0] <= t_s - window_s), None)
        p = self.person
        return then is not None and float(np.hypot(p.mx - then[1], p.my - then[2])) <= max_move * p.size


class PeopleModel:
    def __init__(self, detector: OnnxDetector, cfg: PeopleModelConfig, min_people: int) -> None:
        self.detector = detector
        self.cfg = cfg
        self.min_people = min_people
        self._next_t = -1e9
        self._tracks: list[_PersonTrack] = []
        self.vehicle_boxes: list[tuple[float, float, float, float]] = []  # work px, last model frame
        self.vehicles_t = -1e9
        self._crowd_since: float | None = None
        self._crowd_last: float = -1e9
        self._episode = 0
        self.runs = 0

    def _detect(self, bgr: np.ndarray) -> list[Detection]:
        n = self.cfg.tiles
        thr = min(self.cfg.person_score, self.cfg.vehicle_score)
        wanted = VEHICLE_CLASSES | {"person"}
        if n == 1:
            return self.detector.detect(bgr, thr, wanted)
        h, w = bgr.shape[:2]
        out: list[Detection] = []
        tw, th = w / n, h / n
        ov = 0.1  # tiles overlap so a person on a seam is whole in one of them
        for i in range(n):
            for j in range(n):
                x0, y0 = int(max(0, (i - ov) * tw)), int(max(0, (j - ov) * th))
                x1, y1 = int(min(w, (i + 1 + ov) * tw)), int(min(h, (j + 1 + ov) * th))
                for d in self.detector.detect(bgr[y0:y1, x0:x1], thr, wanted):
                    b = d.box
                    out.append(Detection(d.cls, d.score, (b[0] + x0, b[1] + y0, b[2] + x0, b[3] + y0)))
        return out

    def _follow(self, people: list[_Person], t_s: float) -> None:
        """Each person to the nearest free track within half a box size (closest pairs first):
        in a dense walking crowd "someone stood here a second ago" is true of everyone."""
        pairs = []
        for i, p in enumerate(people):
            for j, tr in enumerate(self._tracks):
                d = float(np.hypot(p.mx - tr.person.mx, p.my - tr.person.my))
                if d <= 0.5 * max(p.size, 1.0):
                    pairs.append((d, i, j))
        used_p, used_t = set(), set()
        for _, i, j in sorted(pairs):
            if i in used_p or j in used_t:
                continue
            used_p.add(i)
            used_t.add(j)
            tr = self._tracks[j]
            tr.person, tr.seen_t = people[i], t_s
            tr.history.append((t_s, people[i].mx, people[i].my))
        for i, p in enumerate(people):
            if i not in used_p:
                tr = _PersonTrack(p, t_s, t_s)
                tr.history.append((t_s, p.mx, p.my))
                self._tracks.append(tr)
        # A person missed by one or two model frames keeps their track (occlusion in a crowd).
        self._tracks = [tr for tr in self._tracks if t_s - tr.seen_t <= 3.5 * self.cfg.every_s]

    def update(self, bgr_full: np.ndarray, t_s: float, scale: float, h_ref: np.ndarray) -> list[Sighting]:
        c = self.cfg
        if t_s < self._next_t:
            return []
        self._next_t = t_s + c.every_s
        self.runs += 1
        dets = self._detect(bgr_full)
        vehicles = [d.box for d in dets if d.cls in VEHICLE_CLASSES and d.score >= c.vehicle_score]
        self.vehicle_boxes = [tuple(v / scale for v in b) for b in vehicles]
        self.vehicles_t = t_s
        people: list[_Person] = []
        for d in dets:
            if d.cls != "person" or d.score < c.person_score:
                continue
            x0, y0, x1, y1 = d.box
            area = max(1e-6, (x1 - x0) * (y1 - y0))
            if any(max(0.0, min(x1, v[2]) - max(x0, v[0])) * max(0.0, min(y1, v[3]) - max(y0, v[1])) / area > 0.3
                   for v in vehicles):
                continue  # riding or driving: traffic, not a pedestrian
            cx, cy = d.centre
            p = h_ref @ np.array([cx / scale, cy / scale, 1.0])
            people.append(_Person(float(p[0] / p[2]), float(p[1] / p[2]), d.size / scale, d.box))
        self._follow(people, t_s)
        standing = [tr.person for tr in self._tracks if tr.seen_t == t_s
                    and tr.standing(t_s, c.standing_window_s, c.standing_max_move)]
        best: list[_Person] = []
        for seed in standing:
            r = c.crowd_radius_sizes * float(np.median([p.size for p in standing]))
            near = [p for p in standing if np.hypot(p.mx - seed.mx, p.my - seed.my) <= 2 * r]
            cx, cy = np.mean([p.mx for p in near]), np.mean([p.my for p in near])
            members = [p for p in near if np.hypot(p.mx - cx, p.my - cy) <= r]
            if len(members) > len(best):
                best = members
        if len(best) < self.min_people:
            # One model frame without the crowd (occlusion, a missed box) does not restart the hold.
            if self._crowd_since is not None and t_s - self._crowd_last > 1.5 * c.every_s:
                self._crowd_since = None
            return []
        if self._crowd_since is None:
            self._crowd_since = t_s
            self._episode += 1
        self._crowd_last = t_s
        if t_s - self._crowd_since < c.crowd_hold_s:
            return []
        x0, y0, x1, y1 = _union([p.box for p in best])
        conf = min(0.99, 0.6 + 0.04 * (len(best) - self.min_people))
        return [Sighting("crowd", f"mcrowd{self._episode}", (x0 + x1) / 2 / scale, (y0 + y1) / 2 / scale,
                         _to_work_bbox((x0, y0, x1, y1), scale), conf, since_s=self._crowd_since)]
