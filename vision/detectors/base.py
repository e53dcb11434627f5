"""What detectors hand to the tracker and the incident stage."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Blob:
    """One detection in work-resolution pixels; sizes on the ground when known."""

    kind: str  # "person" | "vehicle" | "fire"
    x: float
    y: float
    bbox: tuple[int, int, int, int]  # x, y, w, h (work px)
    area_px: int
    len_m: float = 0.0
    area_m2: float = 0.0
    confidence: float = 1.0
    key: str = ""  # stable id from the detector (fire candidates)


@dataclass(slots=True)
class Sighting:
    """Evidence of one incident in one frame, before the incident stage de-duplicates it."""

    kind: str  # an IncidentKind value
    key: str  # stable per detector object (track or candidate) so a sighting chain stays one incident
    x: float  # work px
    y: float
    bbox: tuple[int, int, int, int]  # work px
    confidence: float
    ground: tuple[float, float] | None = None  # east/north metres, when telemetry exists
    since_s: float | None = None  # when its condition began, as far as the detector knows
