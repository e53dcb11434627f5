"""Coverage ledger: what the cameras actually saw, and when — from flown poses and the camera
footprint, not from mission item indices. After a drone comes home early (battery, failsafe),
the cells it had not finished are the ones this ledger says are not yet seen, and those are
re-planned (`mission_planner.plan_patrol(..., cells=remaining)`).

Geometry is in the grid's UTM metres (`GridSet.projector`), against each cell's flyable area
(`PatrolPlan.flyable_polygons_m`), the same area the planner's coverage is measured against.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import shapely
from shapely.geometry import Polygon

from common.values import CameraModel, Pose

MIN_SEEING_ALT_M = 20.0  # below this (take-off, landing) the frames are not counted as patrol coverage
VISIT_FRACTION = 0.8  # a part counts as visited once this share of it was seen within VISIT_WINDOW_S
VISIT_WINDOW_S = 900.0  # what was seen longer ago than this does not add to a visit


@dataclass
class PartLedger:
    """One cell part of the plan (a cell, or a battery-sized run of its lanes): its visits.

    Frames are gathered in batches stamped with their newest frame; a visit is counted at the
    batch that brings the part seen within the window to VISIT_FRACTION, then it starts again.
    """

    key: tuple[str, int]
    area: object
    pieces: list = field(default_factory=list)
    newest_s: float = 0.0
    batches: list = field(default_factory=list)  # (t_s, geometry)
    visits_s: list = field(default_factory=list)

    def update(self) -> float | None:
        if not self.pieces:
            return None
        self.batches.append((self.newest_s, shapely.union_all(self.pieces).intersection(self.area)))
        self.pieces = []
        self.batches = [(t, g) for t, g in self.batches if t >= self.newest_s - VISIT_WINDOW_S]
        seen = shapely.union_all([g for _, g in self.batches])
        if self.area.area > 0 and seen.area >= VISIT_FRACTION * self.area.area:
            self.visits_s.append(self.newest_s)
            self.batches = []
            return self.newest_s
        return None


@dataclass
class CellLedger:
    grid_id: str
    area: object  # flyable polygon, metres
    pieces: list = field(default_factory=list)
    seen: object = None
    first_seen_s: float | None = None
    last_seen_s: float | None = None

    def fraction(self) -> float:
        if self.pieces:
            merged = shapely.union_all([self.seen, *self.pieces] if self.seen is not None else self.pieces)
            self.seen = merged.intersection(self.area)
            self.pieces = []
        if self.seen is None or self.area.area <= 0:
            return 0.0
        return min(1.0, self.seen.area / self.area.area)


class CoverageLedger:
    def __init__(self, flyable_m: dict[str, object], projector, camera: CameraModel,
                 parts_m: dict[tuple[str, int], object] | None = None):
        """parts_m: (grid_id, part) -> the ground that part's lanes show, for a shift's visit counts
        (`update_visits`); without it visits are not counted (one sweep needs only the coverage)."""
        self.projector = projector
        self.camera = camera
        self.cells = {g: CellLedger(g, a) for g, a in flyable_m.items()}
        self._tree = shapely.STRtree([c.area for c in self.cells.values()])
        self._ids = list(self.cells)
        self.parts = {k: PartLedger(k, a) for k, a in (parts_m or {}).items() if not a.is_empty}
        self._part_keys = list(self.parts)
        self._part_tree = shapely.STRtree([p.area for p in self.parts.values()]) if self.parts else None

    def footprint_m(self, pose: Pose) -> Polygon:
        """The nadir camera's ground rectangle, image width across the heading."""
        x, y = self.projector.lonlat_to_m(pose.lon, pose.lat)
        across, along = self.camera.footprint_m(pose.alt_rel_m)
        yaw = math.radians(pose.yaw_deg)
        fx, fy = math.sin(yaw), math.cos(yaw)  # forward (east, north)
        sx, sy = fy, -fx  # right
        pts = [(float(x) + fx * a * along / 2 + sx * s * across / 2, float(y) + fy * a * along / 2 + sy * s * across / 2)
               for a, s in ((1, 1), (1, -1), (-1, -1), (-1, 1))]
        return Polygon(pts)

    def observe(self, pose: Pose, t_s: float) -> list[str]:
        """Count one camera frame's footprint; returns the cells it touched."""
        if pose.alt_rel_m < MIN_SEEING_ALT_M:
            return []
        fp = self.footprint_m(pose)
        touched = []
        for i in self._tree.query(fp, predicate="intersects"):
            cell = self.cells[self._ids[int(i)]]
            cell.pieces.append(fp)
            if len(cell.pieces) > 64:
                cell.fraction()
            if cell.first_seen_s is None:
                cell.first_seen_s = t_s
            cell.last_seen_s = t_s
            touched.append(cell.grid_id)
        for i in (self._part_tree.query(fp, predicate="intersects") if self._part_tree is not None else ()):
            part = self.parts[self._part_keys[int(i)]]
            part.pieces.append(fp)
            part.newest_s = t_s
        return touched

    def update_visits(self) -> list[tuple[str, int]]:
        """Count the visits the frames since the last call complete; returns the parts visited."""
        return [k for k, p in self.parts.items() if p.update() is not None]

    def last_visits(self) -> dict[tuple[str, int], float]:
        """(grid_id, part) -> scenario s of its last completed visit (parts never visited are absent)."""
        return {k: p.visits_s[-1] for k, p in self.parts.items() if p.visits_s}

    def fraction(self, grid_id: str) -> float:
        return self.cells[grid_id].fraction()

    def remaining(self, grid_ids, min_fraction: float = 0.95) -> list[str]:
        """Those of `grid_ids` not yet seen to `min_fraction` of their flyable area."""
        return [g for g in grid_ids if g in self.cells and self.cells[g].fraction() < min_fraction]

    def summary(self) -> dict:
        total = sum(c.area.area for c in self.cells.values())
        seen = sum(c.fraction() * c.area.area for c in self.cells.values())
        return {
            "coverage_pct": round(100.0 * seen / total, 2) if total else 0.0,
            "cells_seen": sum(1 for c in self.cells.values() if c.fraction() >= 0.95),
            "cells": {g: {"seen_fraction": round(c.fraction(), 4),
                          "first_seen_s": None if c.first_seen_s is None else round(c.first_seen_s, 1),
                          "last_seen_s": None if c.last_seen_s is None else round(c.last_seen_s, 1)}
                      for g, c in self.cells.items()},
            "parts": [{"grid_id": k[0], "part": k[1], "area_m2": round(p.area.area, 1),
                       "visits_s": [round(t, 1) for t in p.visits_s]}
                      for k, p in self.parts.items()],
        }
