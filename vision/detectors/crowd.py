"""Crowd gathering: at least `min_people` people within `radius_m` of their centre.

People are counted from person tracks, and from slow blobs too big for one person (people who
meet merge into one motion blob): each counts area / `person_area_m2` heads. Tracks closer than
`min_spacing_m` count once; at least `min_standing` members must have stopped (walkers crossing
paths are not a crowd), and the cluster must hold for `hold_s` before it is reported.

Standing people stay known through the tracker's template check, so a crowd that walked in and
stopped still counts. One sighting per cluster; the cluster's key is its lowest track id so it
stays the same incident while people join.
"""
from __future__ import annotations

import math

from ..config import CrowdConfig
from ..tracker import Track
from .base import Sighting


class CrowdDetector:
    def __init__(self, cfg: CrowdConfig) -> None:
        self.cfg = cfg
        self._pending: list[tuple[tuple[float, float], float]] = []  # (centre, since) of clusters on hold

    def head_count(self, tr: Track) -> int:
        """People in one track: walkers who meet share one blob, so a slow blob too big for one
        person counts area / person_area_m2 heads (at least two)."""
        if tr.kind == "person":
            return 1
        return max(2, min(8, round(tr.area_m2 / self.cfg.person_area_m2)))

    def update(self, tracks: list[Track], t_s: float) -> list[Sighting]:
        c = self.cfg
        # Slow "vehicle"-sized blobs among walkers are usually people merged into one blob.
        people = [tr for tr in tracks if tr.ground is not None and t_s - tr.last_seen_t <= 1.0
                  and (tr.kind == "person" or (tr.max_speed_m_s < c.max_group_speed_m_s
                                               and len(tr.history) >= 2 and tr.history[-1][0] - tr.history[0][0] >= 1.5))]
        # Two tracks on one spot are one person seen twice (a blob split, a re-acquired walker).
        distinct: list[Track] = []
        for tr in sorted(people, key=lambda tr: tr.id):
            if all(math.dist(tr.ground, d.ground) > c.min_spacing_m for d in distinct):
                distinct.append(tr)
        people = distinct
        if sum(self.head_count(p) for p in people) < c.min_people:
            self._pending.clear()
            return []
        r = c.radius_m
        used: set[int] = set()
        out: list[Sighting] = []
        # Seed clusters from each person; take the biggest first so one crowd gives one sighting.
        clusters = []
        for seed in people:
            near = [p for p in people if math.dist(p.ground, seed.ground) <= 2 * r]
            ce = sum(p.ground[0] for p in near) / len(near)
            cn = sum(p.ground[1] for p in near) / len(near)
            members = [p for p in near if math.hypot(p.ground[0] - ce, p.ground[1] - cn) <= r]
            clusters.append((sum(self.head_count(m) for m in members), members, (ce, cn)))
        pending: list[tuple[tuple[float, float], float]] = []
        for count, members, centre in sorted(clusters, key=lambda c_: -c_[0]):
            if count < c.min_people or any(m.id in used for m in members):
                continue
            # People passing each other are not a crowd: some must have stopped there.
            standing = sum(1 for m in members if m.speed_m_s(t_s, window_s=2.0) < c.standing_speed_m_s)
            if standing < c.min_standing:
                continue
            used.update(m.id for m in members)
            since = next((s for ctr, s in self._pending if math.dist(ctr, centre) <= r), t_s)
            pending.append((centre, since))
            if t_s - since < c.hold_s:
                continue
            xs = [m.x for m in members]
            ys = [m.y for m in members]
            x0, y0 = int(min(xs)) - 3, int(min(ys)) - 3
            bbox = (x0, y0, int(max(xs)) + 3 - x0, int(max(ys)) + 3 - y0)
            confidence = min(0.99, 0.6 + 0.08 * (count - c.min_people))
            out.append(Sighting("crowd", f"crowd{min(m.id for m in members)}", sum(xs) / len(xs), sum(ys) / len(ys),
                                bbox, confidence, ground=centre, since_s=since))
        self._pending = pending
        return out
