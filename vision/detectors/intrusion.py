"""Zone intrusion: a confirmed person or vehicle track whose ground position is inside a
restricted polygon (grown by `margin_m`, about one geolocation error, so an alarm is not late).
Needs telemetry: without a ground position there is nothing to test against the map.
"""
from __future__ import annotations

from shapely.geometry import Point, Polygon
from shapely.prepared import prep

from ..config import IntrusionConfig
from ..tracker import Track
from .base import Sighting


class IntrusionDetector:
    def __init__(self, cfg: IntrusionConfig, zones_en: list[Polygon]) -> None:
        self.cfg = cfg
        self.zones = [prep(z.buffer(cfg.margin_m)) for z in zones_en]

    def update(self, tracks: list[Track], t_s: float) -> list[Sighting]:
        if not self.zones:
            return []
        out = []
        for tr in tracks:
            if tr.ground is None or t_s - tr.last_seen_t > 1.0:
                continue
            p = Point(tr.ground)
            for i, zone in enumerate(self.zones):
                if zone.contains(p):
                    out.append(Sighting("intrusion", f"zone{i}-trk{tr.id}", tr.x, tr.y, tr.bbox, 0.9, ground=tr.ground))
                    break
        return out
