"""Procedural ground texture in world metres: fields, roads, roofs, trees and colour distractors.

The texture is a BGR image whose pixel (u, v) covers the ground square east = east0_m + u * res,
north = north1_m - v * res. It is built once per scene (cached by its parameters) and warped per
frame, so a frame costs one `cv2.warpPerspective`, not a redraw.

Distractors are deliberate: red/terracotta roofs, orange tarps and yellow parked cars share
colours with fire and traffic, so a detector that keys on colour alone raises false alerts here.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

ROAD_WIDTH_M = 7.0

# BGR palettes. Fields are low-saturation so only real flames are bright saturated orange.
_FIELD_COLOURS = np.array([
    (60, 120, 70), (50, 105, 60), (70, 135, 95), (60, 110, 120),   # grass / crop greens
    (70, 100, 125), (80, 115, 140), (95, 135, 150),                  # bare soil / dry grass
], dtype=np.float32)
_ROOF_COLOURS = [
    (40, 60, 170), (45, 70, 185), (50, 80, 160),    # red / terracotta tiles
    (120, 120, 120), (150, 150, 145), (95, 95, 100),  # concrete and metal
    (140, 110, 80),                                   # blue-grey sheet
]
_PARKED_CAR_COLOURS = [(30, 200, 230), (200, 200, 200), (40, 40, 40), (60, 60, 150), (150, 90, 40)]


@dataclass(frozen=True, slots=True)
class GroundTexture:
    image: np.ndarray  # BGR uint8
    m_per_px: float
    east0_m: float
    north1_m: float

    def tex_from_world(self) -> np.ndarray:
        """3x3 matrix taking texture pixel (u, v, 1) to world (east_m, north_m, 1)."""
        r = self.m_per_px
        return np.array([[r, 0.0, self.east0_m], [0.0, -r, self.north1_m], [0.0, 0.0, 1.0]])


def road_lines(size_m: float, spacing_m: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """East coordinates of north-south roads and north coordinates of east-west roads."""
    half = size_m / 2
    offsets = np.arange(-half + spacing_m / 2, half, spacing_m)
    return tuple(float(x) for x in offsets), tuple(float(y) for y in offsets)


@lru_cache(maxsize=4)
def build_texture(size_m: float, m_per_px: float, seed: int, road_spacing_m: float) -> GroundTexture:
    rng = np.random.default_rng(seed)
    n = int(round(size_m / m_per_px))
    half = size_m / 2

    def px(east: float, north: float) -> tuple[int, int]:
        return int(round((east + half) / m_per_px)), int(round((half - north) / m_per_px))

    def m(length_m: float) -> int:
        return max(1, int(round(length_m / m_per_px)))

    # Fields: 25 m patches of crop colour, then soft noise so the ground has trackable texture.
    cells = max(2, int(size_m / 25))
    field_idx = rng.integers(0, len(_FIELD_COLOURS), size=(cells, cells))
    small = _FIELD_COLOURS[field_idx]
    img = cv2.resize(small, (n, n), interpolation=cv2.INTER_NEAREST)
    coarse = rng.normal(0, 14, size=(n // 8, n // 8)).astype(np.float32)
    coarse = cv2.resize(coarse, (n, n), interpolation=cv2.INTER_LINEAR)
    fine = rng.normal(0, 10, size=(n // 3, n // 3)).astype(np.float32)
    fine = cv2.resize(fine, (n, n), interpolation=cv2.INTER_LINEAR)
    img += (coarse + fine)[:, :, None]
    img = np.clip(img, 0, 255).astype(np.uint8)

    # Crop rows: faint parallel stripes in some fields (strong features for ego-motion).
    for _ in range(int(size_m * size_m / 4000)):
        e, nn = rng.uniform(-half, half, 2)
        x0, y0 = px(e, nn)
        for k in range(12):
            y = y0 + k * m(1.5)
            cv2.line(img, (x0, y), (x0 + m(18), y), (40, 90, 50), 1)

    roads_e, roads_n = road_lines(size_m, road_spacing_m)

    def near_road(east: float, north: float, clearance: float) -> bool:
        return (min(abs(east - r) for r in roads_e) < clearance
                or min(abs(north - r) for r in roads_n) < clearance)

    # Buildings with roofs; a ridge line gives each roof internal structure.
    for _ in range(int(size_m * size_m / 900)):
        e, nn = rng.uniform(-half, half, 2)
        w, h = rng.uniform(8, 20), rng.uniform(8, 16)
        if near_road(e, nn, ROAD_WIDTH_M / 2 + max(w, h) / 2 + 1):
            continue
        colour = _ROOF_COLOURS[rng.integers(len(_ROOF_COLOURS))]
        x0, y0 = px(e - w / 2, nn + h / 2)
        x1, y1 = px(e + w / 2, nn - h / 2)
        cv2.rectangle(img, (x0 + m(0.6), y0 + m(0.6)), (x1 + m(0.6), y1 + m(0.6)), (35, 40, 40), -1)
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1)
        dark = tuple(int(c * 0.75) for c in colour)
        cv2.rectangle(img, (x0, (y0 + y1) // 2), (x1, y1), dark, -1)
        cv2.line(img, (x0, (y0 + y1) // 2), (x1, (y0 + y1) // 2), (30, 30, 30), 1)

    # Trees.
    for _ in range(int(size_m * size_m / 500)):
        e, nn = rng.uniform(-half, half, 2)
        if near_road(e, nn, ROAD_WIDTH_M / 2 + 2):
            continue
        r = rng.uniform(1.5, 3.5)
        cv2.circle(img, px(e, nn), m(r), (30, 70, 35), -1)
        cv2.circle(img, px(e - 0.3 * r, nn + 0.3 * r), m(r * 0.5), (40, 95, 45), -1)

    # Roads with lane markings.
    for re in roads_e:
        cv2.rectangle(img, px(re - ROAD_WIDTH_M / 2, half), px(re + ROAD_WIDTH_M / 2, -half), (75, 75, 78), -1)
        for y in np.arange(-half, half, 6.0):
            cv2.line(img, px(re, y), px(re, y + 3.0), (210, 210, 210), max(1, m(0.15)))
    for rn in roads_n:
        cv2.rectangle(img, px(-half, rn + ROAD_WIDTH_M / 2), px(half, rn - ROAD_WIDTH_M / 2), (75, 75, 78), -1)
        for x in np.arange(-half, half, 6.0):
            cv2.line(img, px(x, rn), px(x + 3.0, rn), (210, 210, 210), max(1, m(0.15)))

    # Colour distractors: orange tarps / painted courts, and parked cars beside roads.
    for _ in range(int(size_m * size_m / 8000)):
        e, nn = rng.uniform(-half, half, 2)
        if near_road(e, nn, ROAD_WIDTH_M / 2 + 4):
            continue
        w, h = rng.uniform(2, 6), rng.uniform(2, 5)
        cv2.rectangle(img, px(e - w / 2, nn + h / 2), px(e + w / 2, nn - h / 2), (20, 120, 235), -1)
    for _ in range(int(size_m * size_m / 2500)):
        along = rng.uniform(-half, half)
        if rng.random() < 0.5:
            road = roads_e[rng.integers(len(roads_e))]
            e, nn, horizontal = road + ROAD_WIDTH_M / 2 + 1.5, along, False
        else:
            road = roads_n[rng.integers(len(roads_n))]
            e, nn, horizontal = along, road - ROAD_WIDTH_M / 2 - 1.5, True
        lw = (4.4, 1.8) if horizontal else (1.8, 4.4)
        colour = _PARKED_CAR_COLOURS[rng.integers(len(_PARKED_CAR_COLOURS))]
        # Nobody parks across a junction: a car beside one road must not stand on the crossing one.
        crossing = roads_n if not horizontal else roads_e
        if min(abs((nn if not horizontal else e) - r) for r in crossing) < ROAD_WIDTH_M / 2 + 3.0:
            continue
        cv2.rectangle(img, px(e - lw[0] / 2, nn + lw[1] / 2), px(e + lw[0] / 2, nn - lw[1] / 2), colour, -1)

    # Soften to camera-like sharpness; avoids aliasing shimmer when the texture is minified.
    img = cv2.GaussianBlur(img, (3, 3), 0)
    return GroundTexture(image=img, m_per_px=m_per_px, east0_m=-half, north1_m=half)
