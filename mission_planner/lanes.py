"""Per-cell coverage lanes: boustrophedon sweeps, vectorised over every cell at once.

For each cell (already reduced to the airspace a drone may use) we pick the sweep direction that
minimises the number of lanes (the cell's minimum width, found on the convex hull's edges: with
time lost at every turn, turns dominate once lane length is fixed by area), rotate all cells so
lanes run along x, and cut each cell into bands one lane spacing high. Each connected piece of
a band gets one lane through the piece's mid-height spanning its whole x-extent, so concave
edges between lanes are still swept; the lane is then extended by a lead-in at both ends and
trimmed where it would enter a no-fly keep-out.

Coverage is measured, not assumed: every lane sweeps a strip one footprint wide and half a
footprint longer at each end; the union of strips is intersected with the cell's flyable area.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import LineString, Polygon


@dataclass(frozen=True, slots=True)
class CoverageLane:
    """One straight sweep over a cell, in metres (projected frame), flown start -> end."""

    grid_id: str
    start_m: tuple[float, float]
    end_m: tuple[float, float]

    @property
    def length_m(self) -> float:
        return math.dist(self.start_m, self.end_m)


@dataclass(frozen=True, slots=True)
class CellSweep:
    """How one cell is swept: lanes in flying order and the coverage they achieve."""

    grid_id: str
    sweep_heading_deg: float  # lane direction, clockwise from grid north, 0..180
    lanes: tuple[CoverageLane, ...]
    coverage: float  # fraction of the flyable area seen by the camera
    flyable_area_m2: float

    @property
    def path_m(self) -> np.ndarray:
        """(N, 2) waypoints: each lane's start and end, in order."""
        if not self.lanes:
            return np.zeros((0, 2))
        return np.array([p for lane in self.lanes for p in (lane.start_m, lane.end_m)], float)


def _rotation_about(geoms: np.ndarray, centres: np.ndarray, angles_rad: np.ndarray) -> np.ndarray:
    """Rotate each geometry by -angle about its centre (so its sweep direction becomes +x)."""
    _, idx = shapely.get_coordinates(geoms, return_index=True)
    c, s = np.cos(angles_rad)[idx], np.sin(angles_rad)[idx]
    cx, cy = centres[idx, 0], centres[idx, 1]

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0] - cx, xy[:, 1] - cy
        return np.column_stack([c * x + s * y, -s * x + c * y])

    return shapely.transform(geoms, fn)


def make_polygonal_valid(geoms: np.ndarray) -> np.ndarray:
    """Repair geometries a projection or rotation nudged invalid (a hole touching its shell at
    one vertex can end up crossing it by a nanometre), keeping only their polygonal parts."""
    geoms = np.asarray(geoms, dtype=object)
    bad = np.flatnonzero(~shapely.is_valid(geoms))
    if len(bad):
        geoms = geoms.copy()
        fixed = shapely.make_valid(geoms[bad])
        geoms[bad] = [shapely.union_all([p for p in shapely.get_parts(g) if p.geom_type == "Polygon"])
                      for g in fixed]
    return geoms


def sweep_angles(areas: np.ndarray) -> np.ndarray:
    """Per geometry, the direction (radians from +x) of lanes minimising the lane count."""
    hulls = shapely.convex_hull(areas)
    coords, idx = shapely.get_coordinates(hulls, return_index=True)
    out = np.zeros(len(areas))
    if len(coords) == 0:
        return out
    bounds = np.searchsorted(idx, np.arange(len(areas) + 1))
    for i in range(len(areas)):
        pts = coords[bounds[i]:bounds[i + 1]]
        if len(pts) < 3:
            continue
        d = np.diff(pts, axis=0)
        keep = np.hypot(d[:, 0], d[:, 1]) > 1e-6
        if not keep.any():
            continue
        ang = np.arctan2(d[keep, 1], d[keep, 0])
        nx, ny = -np.sin(ang), np.cos(ang)  # normal of each candidate lane direction
        proj = pts[:, 0][None, :] * nx[:, None] + pts[:, 1][None, :] * ny[:, None]
        width = proj.max(axis=1) - proj.min(axis=1)
        # Prefer the narrowest; among near-equal widths (rectangles) the longest hull edge.
        best = np.flatnonzero(width <= width.min() + 0.5)
        lengths = np.hypot(d[keep, 0], d[keep, 1])[best]
        out[i] = ang[best[np.argmax(lengths)]] % math.pi
    return out


def sweep_cells(grid_ids: list[str], flight_areas: np.ndarray, coverage_areas: np.ndarray,
                keep_out, *, spacing_m: float, footprint_m: tuple[float, float],
                lead_in_m: float, angles_rad: np.ndarray | None = None) -> list[CellSweep]:
    """Lanes for every cell at once.

    flight_areas: cells minus the no-fly keep-out (where lanes may run);
    coverage_areas: cells minus the no-fly zones themselves (what must be seen);
    keep_out: no-fly zones grown by the safety margin (lanes are trimmed out of it), or None;
    angles_rad: lane direction per cell (radians from +x; NaN = choose), else all chosen.
    """
    n = len(grid_ids)
    flight_areas = np.asarray(flight_areas, dtype=object)
    coverage_areas = np.asarray(coverage_areas, dtype=object)
    width_m, along_m = footprint_m
    empty = shapely.is_empty(flight_areas) | (shapely.area(flight_areas) < 1.0)
    live = np.flatnonzero(~empty)
    angles = np.zeros(n)
    centres = np.zeros((n, 2))
    sweeps: list[CellSweep | None] = [None] * n
    cov_area = shapely.area(coverage_areas)
    for i in np.flatnonzero(empty):
        sweeps[i] = CellSweep(grid_ids[i], 0.0, (), 1.0 if cov_area[i] < 1.0 else 0.0, float(cov_area[i]))
    if len(live) == 0:
        return sweeps  # type: ignore[return-value]

    fa = flight_areas[live]
    angles[live] = sweep_angles(fa)
    if angles_rad is not None:
        forced = np.asarray(angles_rad, float)[live]
        angles[live] = np.where(np.isnan(forced), angles[live], forced)
    centres[live] = shapely.get_coordinates(shapely.centroid(shapely.envelope(fa)))
    rot = make_polygonal_valid(_rotation_about(fa, centres[live], angles[live]))
    b = shapely.bounds(rot)
    height = b[:, 3] - b[:, 1]
    n_lanes = np.maximum(1, np.ceil(height / spacing_m - 1e-9)).astype(int)
    pitch = height / n_lanes

    # Bands: one per lane, as boxes intersected with the rotated cell.
    band_cell = np.repeat(np.arange(len(live)), n_lanes)
    band_no = np.arange(band_cell.size) - np.repeat(np.cumsum(n_lanes) - n_lanes, n_lanes)
    y0 = b[band_cell, 1] + band_no * pitch[band_cell]
    y1 = y0 + pitch[band_cell]
    boxes = shapely.box(b[band_cell, 0] - 1.0, y0, b[band_cell, 2] + 1.0, y1)
    pieces = shapely.intersection(boxes, rot[band_cell])
    parts, part_band = shapely.get_parts(pieces, return_index=True)
    keep = shapely.area(parts) > 0.01
    parts, part_band = parts[keep], part_band[keep]
    pb = shapely.bounds(parts)
    lane_cell = band_cell[part_band]
    lane_band = band_no[part_band]
    # Through the middle of the piece (the band's middle for a full band): a piece is at most one
    # lane spacing high, less than a footprint, so one lane at its mid-height sees all of it.
    lane_y = 0.5 * (pb[:, 1] + pb[:, 3])
    lane_x0 = pb[:, 0] - lead_in_m
    lane_x1 = pb[:, 2] + lead_in_m

    # Trim lanes out of the no-fly keep-out (only cells that touch it).
    seg_cell, seg_band, seg_y, seg_x0, seg_x1 = lane_cell, lane_band, lane_y, lane_x0, lane_x1
    if keep_out is not None and not keep_out.is_empty:
        shapely.prepare(keep_out)
        env = shapely.buffer(shapely.envelope(fa), lead_in_m + 1.0)
        touched = np.flatnonzero(shapely.intersects(env, keep_out))
        if len(touched):
            ko_rot = _rotation_about(np.array([keep_out] * len(touched), dtype=object),
                                     centres[live][touched], angles[live][touched])
            ko_by_cell = dict(zip(touched.tolist(), ko_rot))
            hit = np.isin(lane_cell, touched)
            lines = shapely.linestrings(np.stack([np.column_stack([lane_x0[hit], lane_y[hit]]),
                                                  np.column_stack([lane_x1[hit], lane_y[hit]])], axis=1))
            kos = np.array([ko_by_cell[c] for c in lane_cell[hit]], dtype=object)
            trimmed = shapely.difference(lines, kos)
            tparts, tidx = shapely.get_parts(trimmed, return_index=True)
            tparts_ok = shapely.length(tparts) > 0.5
            tparts, tidx = tparts[tparts_ok], tidx[tparts_ok]
            tb = shapely.bounds(tparts)
            hit_ix = np.flatnonzero(hit)[tidx]
            miss = np.flatnonzero(~hit)
            seg_cell = np.concatenate([lane_cell[miss], lane_cell[hit_ix]])
            seg_band = np.concatenate([lane_band[miss], lane_band[hit_ix]])
            seg_y = np.concatenate([lane_y[miss], lane_y[hit_ix]])
            seg_x0 = np.concatenate([lane_x0[miss], tb[:, 0]])
            seg_x1 = np.concatenate([lane_x1[miss], tb[:, 2]])

    # Serpentine order per cell: bands bottom to top, alternating direction.
    order = np.lexsort((seg_x0, seg_band, seg_cell))
    seg_cell, seg_band, seg_y, seg_x0, seg_x1 = (a[order] for a in (seg_cell, seg_band, seg_y, seg_x0, seg_x1))
    # Coverage: union of swept strips per cell against the rotated coverage area.
    strips = shapely.box(seg_x0 - along_m / 2, seg_y - width_m / 2, seg_x1 + along_m / 2, seg_y + width_m / 2)
    cov_rot = make_polygonal_valid(_rotation_about(coverage_areas[live], centres[live], angles[live]))
    seen = np.array([Polygon()] * len(live), dtype=object)
    if len(strips):
        present = np.unique(seg_cell)
        # buffer(0) of a multipolygon of overlapping strips is their union, one cell per row.
        seen[present] = shapely.buffer(shapely.multipolygons(strips, indices=np.searchsorted(present, seg_cell)), 0)
    seen_area = shapely.area(shapely.intersection(seen, cov_rot))
    live_cov_area = cov_area[live]
    coverage = np.where(live_cov_area > 1.0, seen_area / np.maximum(live_cov_area, 1e-9), 1.0)

    bounds_ix = np.searchsorted(seg_cell, np.arange(len(live) + 1))
    for k, i in enumerate(live):
        lo, hi = bounds_ix[k], bounds_ix[k + 1]
        ang = angles[i]
        c, s = math.cos(ang), math.sin(ang)
        cx, cy = centres[i]
        lanes: list[CoverageLane] = []
        bands = seg_band[lo:hi]
        flip = False
        for band in np.unique(bands):
            sel = np.flatnonzero(bands == band) + lo
            if flip:
                sel = sel[::-1]
            for j in sel:
                xa, xb = (seg_x1[j], seg_x0[j]) if flip else (seg_x0[j], seg_x1[j])
                y = seg_y[j]
                lanes.append(CoverageLane(
                    grid_ids[i],
                    (cx + c * xa - s * y, cy + s * xa + c * y),
                    (cx + c * xb - s * y, cy + s * xb + c * y)))
            flip = not flip
        heading = (90.0 - math.degrees(ang)) % 180.0
        sweeps[i] = CellSweep(grid_ids[i], heading, tuple(lanes), float(min(1.0, coverage[k])),
                              float(live_cov_area[k]))
    return sweeps  # type: ignore[return-value]


def seen_area(lanes, footprint_m: tuple[float, float]):
    """The ground a camera sees flying these lanes (strip per lane), as one geometry in metres.

    A coverage ledger can intersect this with `GridSet.flyable_m[grid_id]`.
    """
    width_m, along_m = footprint_m
    strips = []
    for lane in lanes:
        line = LineString([lane.start_m, lane.end_m])
        if line.length < 1e-6:
            continue
        ext = shapely.affinity.scale(line, (line.length + along_m) / line.length,
                                     (line.length + along_m) / line.length)
        strips.append(ext.buffer(width_m / 2, cap_style="flat"))
    return shapely.union_all(strips) if strips else Polygon()


def sweep_cells_repaired(grid_ids: list[str], flight_areas: np.ndarray, coverage_areas: np.ndarray, keep_out, *,
                         spacing_m: float, footprint_m: tuple[float, float], lead_in_m: float,
                         min_coverage: float) -> list[CellSweep]:
    """`sweep_cells`, then re-sweep cells short of `min_coverage` at other angles and keep the best.

    Shortfalls come from lanes trimmed at a slanted no-fly edge; sweeping parallel to that edge
    (or across the first choice) usually closes them, so the candidates are the keep-out edge
    directions near the cell and the first angle turned by 90 and +/-45 degrees.
    """
    kw = dict(spacing_m=spacing_m, footprint_m=footprint_m, lead_in_m=lead_in_m)
    sweeps = sweep_cells(grid_ids, flight_areas, coverage_areas, keep_out, **kw)
    short = [i for i, s in enumerate(sweeps) if s.coverage < min_coverage and s.lanes]
    if not short:
        return sweeps
    flight_areas = np.asarray(flight_areas, dtype=object)
    coverage_areas = np.asarray(coverage_areas, dtype=object)
    cand_cell: list[int] = []
    cand_angle: list[float] = []
    for i in short:
        first = math.radians(90.0 - sweeps[i].sweep_heading_deg)
        options = [first + math.pi / 2, first + math.pi / 4, first - math.pi / 4]
        if keep_out is not None and not keep_out.is_empty:
            near = shapely.intersection(keep_out.boundary, flight_areas[i].buffer(spacing_m))
            segs = []
            for part in shapely.get_parts(near):
                xy = shapely.get_coordinates(part)
                d = np.diff(xy, axis=0)
                segs.extend(zip(np.hypot(d[:, 0], d[:, 1]), np.arctan2(d[:, 1], d[:, 0])))
            segs.sort(reverse=True)
            options += [a for _, a in segs[:2]]
        for a in options:
            cand_cell.append(i)
            cand_angle.append(a % math.pi)
    idx = np.array(cand_cell)
    trial = sweep_cells([grid_ids[i] for i in idx], flight_areas[idx], coverage_areas[idx], keep_out,
                        angles_rad=np.array(cand_angle), **kw)
    for i, t in zip(idx, trial):
        cur = sweeps[i]
        better = t.coverage > cur.coverage + 1e-4 or (t.coverage >= cur.coverage - 1e-9 and len(t.lanes) < len(cur.lanes))
        if better and (t.coverage >= min_coverage or cur.coverage < min_coverage):
            sweeps[i] = t
    return sweeps


def add_edge_passes(sweeps: list[CellSweep], flight_areas, coverage_areas, keep_out, *,
                    footprint_m: tuple[float, float], min_coverage: float) -> list[CellSweep]:
    """For cells still short of `min_coverage`, fly along the no-fly keep-out edge as well.

    What lanes cannot reach lies between the last trimmed lane and the keep-out; following the
    keep-out boundary (just outside it) puts the camera over that strip.
    """
    if keep_out is None or keep_out.is_empty:
        return sweeps
    outline = keep_out.buffer(1.0).boundary
    width_m, _ = footprint_m
    out = list(sweeps)
    for i, sw in enumerate(sweeps):
        cov = coverage_areas[i]
        if sw.coverage >= min_coverage or cov.area < 1.0:
            continue
        # (Also cells with no lanes at all: slivers left between the cell edge and the keep-out.)
        seen = seen_area(sw.lanes, footprint_m)
        missing = cov.difference(seen)
        if missing.is_empty:
            continue
        edge = shapely.intersection(outline, missing.buffer(width_m / 2))
        extra: list[CoverageLane] = []
        for part in shapely.get_parts(shapely.line_merge(edge) if edge.geom_type == "MultiLineString" else edge):
            if part.geom_type != "LineString" or part.length < 1.0:
                continue
            xy = shapely.get_coordinates(part.simplify(2.0))
            extra.extend(CoverageLane(sw.grid_id, tuple(a), tuple(b)) for a, b in zip(xy[:-1], xy[1:]))
        if not extra:
            continue
        lanes = sw.lanes + tuple(extra)
        got = shapely.intersection(seen_area(lanes, footprint_m), cov).area / max(cov.area, 1e-9)
        if got > sw.coverage:
            out[i] = CellSweep(sw.grid_id, sw.sweep_heading_deg, lanes, float(min(1.0, got)), sw.flyable_area_m2)
    return out
