"""Cells -> work units: each cell's lanes (lanes.py), split where one battery is not enough.

A unit is a cell, or a run of its contiguous lanes when the cell needs more than
`solver.max_part_fraction` of a battery or more than is left after the round trip from its
nearest dock, or one piece of a cell a no-fly zone cuts in two.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely

from .config import PlannerConfig
from .grids import GridSet
from .lanes import CellSweep, CoverageLane, add_edge_passes, sweep_cells_repaired
from .transit import TransitGraph


@dataclass(frozen=True)
class WorkUnit:
    """A cell, or a contiguous run of its lanes when the cell needs more than one battery."""

    uid: int
    grid_id: str
    part: int
    parts: int
    path_m: np.ndarray  # in-cell waypoints in flying order (lanes + in-cell detours)
    lanes: tuple[CoverageLane, ...]
    work_s: float
    special: bool
    revisit_s: float
    priority: int = 3

    @property
    def radius_m(self) -> float:
        """How far the unit's waypoints reach from its centre (entry/exit may be that far off)."""
        return anchor(self.path_m)[1]

    @property
    def centre_m(self) -> np.ndarray:
        """The unit's waypoint nearest its mean: a point that is always in allowed airspace."""
        return anchor(self.path_m)[0]


def anchor(path_m: np.ndarray) -> tuple[np.ndarray, float]:
    mean = path_m.mean(axis=0)
    centre = path_m[int(np.argmin(np.hypot(*(path_m - mean).T)))]
    return centre, float(np.hypot(*(path_m - centre).T).max())


def sweep_grid(grids: GridSet, cfg: PlannerConfig) -> tuple[dict[str, CellSweep], dict[str, object]]:
    """Lanes of every cell, and per cell the area lanes may use (cell minus no-fly keep-out)."""
    ids = list(grids.grid_ids)
    polys = np.array([c.polygon_m for c in grids.cells], dtype=object)
    cover = np.array([grids.flyable_m[g] for g in ids], dtype=object)
    keep_out = None
    flight = polys
    if grids.no_fly:
        keep_out = grids.no_fly_union_m.buffer(cfg.coverage.no_fly_margin_m)
        shapely.prepare(keep_out)
        hit = shapely.intersects(polys, keep_out)
        flight = polys.copy()
        flight[hit] = shapely.difference(polys[hit], keep_out)
    kw = dict(footprint_m=cfg.footprint_m)
    sweeps = sweep_cells_repaired(ids, flight, cover, keep_out, spacing_m=cfg.lane_spacing_m,
                                  lead_in_m=cfg.coverage.lane_lead_in_m, min_coverage=cfg.coverage.min_coverage, **kw)
    sweeps = add_edge_passes(sweeps, flight, cover, keep_out, min_coverage=cfg.coverage.min_coverage, **kw)
    return dict(zip(ids, sweeps)), dict(zip(ids, flight))


def path_time(path: np.ndarray, cfg: PlannerConfig) -> float:
    if len(path) < 2:
        return cfg.fleet.turn_time_s
    length = float(np.hypot(*np.diff(path, axis=0).T).sum())
    return length / cfg.fleet.cruise_speed_m_s + cfg.fleet.turn_time_s * len(path)


def lane_groups(sw: CellSweep, flight_area) -> list[list[CoverageLane]]:
    """The lanes of each piece of a cell a no-fly zone cuts in two (flying between the pieces
    means going round the zone, so each piece is its own unit); one group otherwise."""
    pieces = [p for p in shapely.get_parts(flight_area) if p.area > 1.0]
    if len(pieces) < 2:
        return [list(sw.lanes)]
    mids = shapely.points([((l.start_m[0] + l.end_m[0]) / 2, (l.start_m[1] + l.end_m[1]) / 2) for l in sw.lanes])
    dist = np.array([shapely.distance(mids, p) for p in pieces])
    owner = dist.argmin(axis=0)
    return [[l for l, o in zip(sw.lanes, owner) if o == k] for k in range(len(pieces)) if (owner == k).any()]


def work_units(grids: GridSet, cfg: PlannerConfig, sweeps: dict[str, CellSweep], flight_areas: dict,
                graph: TransitGraph, flight_budget_s: float, dock_xy: np.ndarray) -> list[WorkUnit]:
    """Cells -> units. A cell is split into parts of contiguous lanes when its sweep needs more than
    max_part_fraction of a battery, or more than is left after the round trip from its nearest dock,
    and where a no-fly zone cuts it in pieces."""
    units: list[WorkUnit] = []
    live = [c for c in grids.cells if sweeps[c.grid_id].lanes]  # others lie inside a no-fly zone
    # Detour each cell's trip to each dock needs round no-fly zones (one vectorised matrix).
    starts = np.array([sweeps[c.grid_id].lanes[0].start_m for c in live]).reshape(-1, 2)
    straight = np.hypot(starts[:, None, 0] - dock_xy[None, :, 0], starts[:, None, 1] - dock_xy[None, :, 1])
    detour = graph.distance_matrix(starts, dock_xy) - straight if len(live) else straight
    for c, extra_m in zip(live, detour):
        sw = sweeps[c.grid_id]
        groups = []
        for piece_lanes in lane_groups(sw, flight_areas[c.grid_id]):
            groups.extend(split_lanes(piece_lanes, cfg, flight_budget_s, dock_xy, extra_m))
        for p, group in enumerate(groups):
            path = np.array([pt for l in group for pt in (l.start_m, l.end_m)], float)
            path = graph.route(path)  # in-cell connectors round a no-fly zone
            units.append(WorkUnit(len(units), c.grid_id, p, len(groups), path, tuple(group),
                                  path_time(path, cfg), c.kind == "special", c.revisit_min * 60.0, c.priority))
    return units


def split_lanes(lanes: list[CoverageLane], cfg: PlannerConfig, flight_budget_s: float,
                dock_xy: np.ndarray, detour_m: np.ndarray | None = None) -> list[list[CoverageLane]]:
    """Contiguous runs of lanes, each fitting a battery with the trip from the nearest dock
    (straight distance plus `detour_m`, the cell's extra distance round no-fly zones per dock)."""
    speed = cfg.fleet.cruise_speed_m_s
    lane_t = np.array([path_time(np.array([l.start_m, l.end_m]), cfg) for l in lanes])
    conn_t = np.array([math.dist(a.end_m, b.start_m) for a, b in zip(lanes[:-1], lanes[1:])]) / speed
    step_t = lane_t + np.concatenate([conn_t, [0.0]])
    cum = np.concatenate([[0.0], np.cumsum(step_t)])
    total = cum[-1]
    k = max(1, math.ceil(total / (cfg.solver.max_part_fraction * flight_budget_s) - 1e-9))
    while True:
        cuts = sorted(set(int(np.argmin(np.abs(cum - total * j / k))) for j in range(1, k)) - {0, len(lanes)})
        groups = [lanes[a:b] for a, b in zip([0, *cuts], [*cuts, len(lanes)])]
        fits = True
        for grp in groups:
            pts = np.array([p for l in grp for p in (l.start_m, l.end_m)])
            centre, radius = anchor(pts)
            d = (np.hypot(*(dock_xy - centre).T) + (0.0 if detour_m is None else detour_m)).min() + radius
            work = path_time(pts, cfg)
            if work > 0.9 * flight_budget_s - 2 * d / speed and len(grp) > 1:
                fits = False
                break
        if fits or k >= len(lanes):
            return groups
        k += 1
