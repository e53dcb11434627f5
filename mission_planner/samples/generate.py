"""Deterministic generator of the Danyang sample grid (mission_planner/samples/danyang_grids.geojson).

911 comprehensive + 61 special cells around Danyang (32.00 N, 119.58 E): irregular block-like
polygons (a Voronoi tessellation, Lloyd-relaxed, denser in town; the smallest merged into a
neighbour so every cell is >= 0.02 km2) from ~0.03 km2 town blocks to ~0.6 km2 fields at the
edge (all within the 0.02-1.5 km2 brief), some made concave (a block cut out of a corner), some
with holes (a pond or a compound); special cells (schools, stations, markets, riverside...)
mostly within reach of a dock, revisit_min 30/45/60/90; 4 docks; 5 no-fly zones, one a
high-voltage corridor crossing several cells. Same seed, same bytes.

    python -m mission_planner.samples.generate [--out FILE] [--seed N]
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import Point, Polygon, box

from common.geo import LocalFrame

CENTER_LAT, CENTER_LON = 32.000, 119.580
N_COMPREHENSIVE, N_SPECIAL = 911, 61
MIN_AREA_M2, MAX_AREA_M2 = 0.02e6, 1.5e6
DEFAULT_SEED = 20261128

SPECIAL_KINDS = ("School", "Railway Station", "Market", "Riverside", "Hospital", "Bus Terminal", "Square")


def _spacing_m(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Target distance between cell seeds: ~140 m blocks in town, up to ~1 km in the fields at the edge."""
    r = np.hypot(x / 1.15, y)
    return 140.0 + 1100.0 * np.clip((r - 2300.0) / 1100.0, 0, 1) ** 2


def _seeds(rng: np.random.Generator, boundary: Polygon, count: int) -> np.ndarray:
    """Variable-density Poisson-disk-like seeds by dart throwing with a shrinking radius."""
    minx, miny, maxx, maxy = boundary.bounds
    pts: list[tuple[float, float]] = []
    scale = 1.0
    shapely.prepare(boundary)
    while len(pts) < count:
        cand = rng.uniform([minx, miny], [maxx, maxy], size=(4000, 2))
        inside = shapely.contains_xy(boundary, cand[:, 0], cand[:, 1])
        cand = cand[inside]
        need = _spacing_m(cand[:, 0], cand[:, 1]) * scale
        for (cx, cy), r in zip(cand, need):
            if pts:
                arr = np.asarray(pts)
                if np.min(np.hypot(arr[:, 0] - cx, arr[:, 1] - cy)) < r:
                    continue
            pts.append((cx, cy))
            if len(pts) == count:
                break
        scale *= 0.93
    return np.asarray(pts)


def _tessellate(seeds: np.ndarray, boundary: Polygon, rounds: int = 3) -> list[Polygon]:
    """Voronoi cells of the seeds clipped to the boundary, Lloyd-relaxed for block-like shapes."""
    for i in range(rounds + 1):
        regions = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=boundary.buffer(5000))
        parts = np.asarray(shapely.get_parts(regions))
        # Match each region to its seed (voronoi_polygons does not keep input order).
        tree = shapely.STRtree(parts)
        idx = tree.query(shapely.points(seeds), predicate="intersects")
        order = np.full(len(seeds), -1)
        order[idx[0]] = idx[1]
        cells = shapely.intersection(parts[order], boundary)
        if i == rounds:
            return list(cells)
        cent = shapely.centroid(cells)
        seeds = 0.5 * seeds + 0.5 * shapely.get_coordinates(cent)
    raise AssertionError("unreachable")


def _merge_small(polys: list[Polygon], count: int) -> list[Polygon]:
    """Merge the smallest cell into its smallest neighbour until `count` cells, all >= MIN_AREA_M2."""
    polys = [shapely.set_precision(p, 0.01) for p in polys]
    while len(polys) > count or min(p.area for p in polys) < MIN_AREA_M2 * 1.02:
        i = min(range(len(polys)), key=lambda k: polys[k].area)
        small = polys[i]
        touching = [k for k in range(len(polys))
                    if k != i and small.intersection(polys[k]).length > 1.0]
        j = min(touching, key=lambda k: polys[k].area)
        merged = shapely.set_precision(shapely.union(small, polys[j]), 0.01)
        if merged.geom_type != "Polygon":
            merged = max(shapely.get_parts(merged), key=lambda g: g.area)
        polys[j] = Polygon(merged.exterior.coords)
        del polys[i]
    return polys


def build(seed: int = DEFAULT_SEED) -> dict:
    rng = np.random.default_rng(seed)
    frame = LocalFrame(CENTER_LAT, CENTER_LON)
    # City outline: an irregular ellipse ~8 x 7 km.
    ang = np.linspace(0, 2 * math.pi, 64, endpoint=False)
    rad = 1 + 0.06 * np.sin(3 * ang + 0.7) + 0.04 * np.cos(5 * ang)
    boundary = Polygon(np.column_stack([4080 * rad * np.cos(ang), 3400 * rad * np.sin(ang)]))
    n = N_COMPREHENSIVE + N_SPECIAL
    seeds = _seeds(rng, boundary, n + 40)
    cells = _tessellate(seeds, boundary)
    polys: list[Polygon] = []
    for c in cells:
        if c.geom_type != "Polygon":
            c = max(shapely.get_parts(c), key=lambda g: g.area)
        polys.append(c)
    polys = _merge_small(polys, n)

    docks = [("DOCK-NW", "Yunyang dock", (-1300, 1000)), ("DOCK-NE", "Development zone dock", (1400, 1000)),
             ("DOCK-SW", "Situ dock", (-1300, -1000)), ("DOCK-SE", "Railway dock", (1300, -1000))]
    centroids = shapely.get_coordinates(shapely.centroid(np.asarray(polys, dtype=object)))
    dock_xy = np.array([xy for _, _, xy in docks])
    near_dock = np.min(np.hypot(centroids[:, None, 0] - dock_xy[None, :, 0], centroids[:, None, 1] - dock_xy[None, :, 1]), axis=1)
    # Specials: schools, stations, markets... in town, mostly within reach of a dock (docks were
    # sited for them), a few further out.
    order = np.argsort(near_dock + rng.uniform(0, 1800, n))
    special_idx = set(int(i) for i in order[:N_SPECIAL])

    # Concave: cut a corner block out of ~15 % of cells (an L-shaped block).
    features = []
    comp_no = spec_no = 0
    for i, poly in enumerate(polys):
        u = rng.uniform()
        a = poly.area
        if u < 0.15 and a > 40000:
            minx, miny, maxx, maxy = poly.bounds
            w, h = (maxx - minx) * 0.45, (maxy - miny) * 0.45
            corner = rng.integers(4)
            cx = minx if corner in (0, 3) else maxx - w
            cy = miny if corner in (0, 1) else maxy - h
            cut = poly.difference(box(cx, cy, cx + w, cy + h))
            if cut.geom_type == "Polygon" and cut.area > 0.6 * a and cut.is_valid:
                poly = cut
        elif u < 0.25 and a > 45000:
            # A hole: a pond or walled compound the cell surrounds.
            r = math.sqrt(a) * rng.uniform(0.10, 0.18)
            c = poly.centroid if poly.buffer(-r - 15).contains(poly.centroid) else poly.representative_point()
            hole = affinity.rotate(affinity.scale(Point(c).buffer(r, 12), 1.0, rng.uniform(0.5, 1.0)),
                                   rng.uniform(0, 180))
            if poly.buffer(-15).contains(hole):
                poly = Polygon(poly.exterior.coords, [hole.exterior.coords])
        if i in special_idx:
            spec_no += 1
            kind = SPECIAL_KINDS[spec_no % len(SPECIAL_KINDS)]
            props = {"grid_id": f"DY-S{spec_no:03d}", "kind": "special", "name": f"{kind} {spec_no:02d}",
                     "priority": int(rng.choice([4, 5])), "revisit_min": int(rng.choice([30, 45, 60, 60, 90]))}
        else:
            comp_no += 1
            props = {"grid_id": f"DY-C{comp_no:04d}", "kind": "comprehensive",
                     "priority": int(rng.choice([1, 2, 3, 3, 3, 4]))}
        features.append((props, poly))

    no_fly = [
        ("NFZ-1", "High-voltage corridor", Polygon([(-2440, -440), (-2360, -560), (-360, 940), (-440, 1060)])),
        ("NFZ-2", "Military compound", affinity.rotate(box(2300, -2500, 2900, -2000), 20)),
        ("NFZ-3", "Prison", box(-2700, 1500, -2300, 1900)),
        ("NFZ-4", "Hospital helipad", Point(600, -600).buffer(150, 8)),
        ("NFZ-5", "Fuel depot", Polygon([(3000, 400), (3500, 480), (3420, 900), (3080, 820)])),
    ]

    def ll(x: float, y: float) -> list[float]:
        lat, lon = frame.to_latlon(x, y)
        return [round(lon, 7), round(lat, 7)]

    def ring(coords) -> list[list[float]]:
        pts = [ll(x, y) for x, y in coords]
        pts[-1] = pts[0]
        return pts

    def poly_json(p: Polygon) -> dict:
        p = shapely.geometry.polygon.orient(p, 1.0)
        return {"type": "Polygon", "coordinates": [ring(p.exterior.coords)] + [ring(h.coords) for h in p.interiors]}

    out = []
    for props, poly in features:
        out.append({"type": "Feature", "properties": props, "geometry": poly_json(poly)})
    for gid, name, poly in no_fly:
        out.append({"type": "Feature", "properties": {"grid_id": gid, "kind": "no_fly", "name": name},
                    "geometry": poly_json(poly)})
    for gid, name, (x, y) in docks:
        out.append({"type": "Feature", "properties": {"grid_id": gid, "kind": "dock", "name": name},
                    "geometry": {"type": "Point", "coordinates": ll(x, y)}})
    return {"type": "FeatureCollection",
            "name": "Danyang governance grid (synthetic sample)",
            # Voronoi output can differ between GEOS releases: record which one made the file.
            "generator": generator_id(seed),
            "features": out}


def generator_id(seed: int = DEFAULT_SEED) -> str:
    return f"mission_planner.samples.generate seed={seed} shapely={shapely.__version__} geos={shapely.geos_version_string}"


def dumps(data: dict) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).with_name("danyang_grids.geojson")))
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    data = build(args.seed)
    Path(args.out).write_text(dumps(data), encoding="utf-8")
    cells = [f for f in data["features"] if f["properties"]["kind"] in ("comprehensive", "special")]
    print(f"wrote {args.out}: {len(cells)} cells, {len(data['features']) - len(cells)} docks/no-fly zones")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
