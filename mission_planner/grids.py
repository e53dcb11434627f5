"""Governance grids in: GeoJSON -> validated cells, no-fly zones and docks in a metric frame.

`load_grids` checks every feature and reports every problem at once (PlanningError.problems),
each naming the feature's index and grid_id. With `skip_invalid=True` bad features are left out
and listed in `GridSet.skipped`; collection-wide problems (no dock, no cells) still raise.

Geometry is projected once to the WGS84 UTM zone of the data (common.geo.utm_epsg_for) so lane
spacing, areas and distances are in true metres.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.validation import explain_validity

from common.geo import utm_epsg_for

from .config import GridConfig, ScheduleConfig
from .errors import GridProblem, PlanningError
from .lanes import make_polygonal_valid

CELL_KINDS = ("comprehensive", "special")
KINDS = (*CELL_KINDS, "no_fly", "dock")


class Projector:
    """WGS84 <-> UTM metres for one dataset; vectorised over shapely geometry arrays."""

    def __init__(self, epsg: int) -> None:
        self.epsg = epsg
        self._fwd = Transformer.from_crs(4326, epsg, always_xy=True)
        self._inv = Transformer.from_crs(epsg, 4326, always_xy=True)

    def lonlat_to_m(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        return self._fwd.transform(np.asarray(lon, float), np.asarray(lat, float))

    def m_to_lonlat(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        return self._inv.transform(np.asarray(x, float), np.asarray(y, float))

    def geoms_to_m(self, geoms):
        return shapely.transform(geoms, lambda c: np.column_stack(self._fwd.transform(c[:, 0], c[:, 1])))

    def geoms_to_wgs84(self, geoms):
        return shapely.transform(geoms, lambda c: np.column_stack(self._inv.transform(c[:, 0], c[:, 1])))

    def latlon_of(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) metres -> (N, 2) (lat, lon)."""
        xy = np.asarray(xy, float).reshape(-1, 2)
        lon, lat = self._inv.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([lat, lon])


@dataclass(frozen=True, slots=True)
class GridCell:
    """A cell to patrol (comprehensive or special) in WGS84 and in metres."""

    grid_id: str
    kind: str
    index: int
    polygon_wgs84: Polygon | MultiPolygon
    polygon_m: Polygon | MultiPolygon
    priority: int = 3
    revisit_min: float = 120.0
    name: str = ""

    @property
    def area_m2(self) -> float:
        return float(self.polygon_m.area)


@dataclass(frozen=True, slots=True)
class NoFlyZone:
    grid_id: str
    index: int
    polygon_wgs84: Polygon
    polygon_m: Polygon
    name: str = ""


@dataclass(frozen=True, slots=True)
class Dock:
    grid_id: str
    index: int
    lat: float
    lon: float
    xy_m: tuple[float, float]
    name: str = ""


@dataclass(frozen=True)
class GridSet:
    """Validated input: cells, no-fly zones and docks, sharing one metric projection."""

    cells: tuple[GridCell, ...]
    no_fly: tuple[NoFlyZone, ...]
    docks: tuple[Dock, ...]
    projector: Projector
    skipped: tuple[GridProblem, ...] = ()
    source: str = ""
    _by_id: dict[str, GridCell] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_id.update({c.grid_id: c for c in self.cells})

    def cell(self, grid_id: str) -> GridCell:
        try:
            return self._by_id[grid_id]
        except KeyError:
            raise PlanningError(f"unknown grid_id {grid_id!r}") from None

    @property
    def grid_ids(self) -> tuple[str, ...]:
        return tuple(c.grid_id for c in self.cells)

    @cached_property
    def no_fly_union_m(self):
        """All no-fly zones as one geometry in metres (empty when there are none)."""
        return shapely.union_all([z.polygon_m for z in self.no_fly]) if self.no_fly else Polygon()

    @cached_property
    def flyable_m(self) -> dict[str, Polygon | MultiPolygon]:
        """Per cell, the area a drone may see from allowed airspace: the cell minus no-fly zones.

        Coverage is measured against this; a coverage ledger should use it too.
        """
        polys = np.array([c.polygon_m for c in self.cells], dtype=object)
        if self.no_fly:
            nf = self.no_fly_union_m
            shapely.prepare(nf)
            hit = shapely.intersects(polys, nf)
            polys = polys.copy()
            polys[hit] = shapely.difference(polys[hit], nf)
        return {c.grid_id: p for c, p in zip(self.cells, polys)}

    def subset(self, grid_ids) -> "GridSet":
        """The same grid with only the given cells (docks and no-fly zones kept)."""
        wanted = list(dict.fromkeys(grid_ids))
        for g in wanted:
            self.cell(g)
        keep = set(wanted)
        return GridSet(tuple(c for c in self.cells if c.grid_id in keep), self.no_fly, self.docks,
                       self.projector, self.skipped, self.source)

    def dock(self, grid_id: str) -> Dock:
        for d in self.docks:
            if d.grid_id == grid_id:
                return d
        raise PlanningError(f"unknown dock {grid_id!r}; docks are {', '.join(d.grid_id for d in self.docks)}")


# ---------------------------------------------------------------------------------------------
# Loading and validation


def load_grids(source: str | Path | dict[str, Any], *, skip_invalid: bool = False,
               grid_config: GridConfig | None = None, schedule: ScheduleConfig | None = None) -> GridSet:
    """Read and validate a grid FeatureCollection (path, JSON text or already-parsed dict)."""
    grid_config = grid_config or GridConfig()
    schedule = schedule or ScheduleConfig()
    features, label = _read_features(source)
    problems: list[GridProblem] = []
    bad_indices: set[int] = set()
    parsed = _check_features(features, schedule, problems, bad_indices)
    # Coordinates that are in range but far from everything else are usually [lat, lon] swapped.
    _check_swapped_outliers(parsed, problems, bad_indices)
    parsed = [p for p in parsed if p["index"] not in bad_indices]
    projector, parsed = _project(parsed, problems, bad_indices)
    _check_cell_areas(parsed, grid_config, problems, bad_indices)
    parsed = [p for p in parsed if p["index"] not in bad_indices]
    _check_docks_outside_no_fly(parsed, problems, bad_indices)
    parsed = [p for p in parsed if p["index"] not in bad_indices]

    cells = tuple(GridCell(p["grid_id"], p["kind"], p["index"], p["geom"], p["geom_m"], p["priority"],
                           p["revisit_min"], p["name"]) for p in parsed if p["kind"] in CELL_KINDS)
    no_fly = tuple(NoFlyZone(p["grid_id"], p["index"], p["geom"], p["geom_m"], p["name"])
                   for p in parsed if p["kind"] == "no_fly")
    docks = tuple(Dock(p["grid_id"], p["index"], p["geom"].y, p["geom"].x, (p["geom_m"].x, p["geom_m"].y), p["name"])
                  for p in parsed if p["kind"] == "dock")

    fatal: list[GridProblem] = []
    if not docks:
        fatal.append(GridProblem("no dock: add at least one feature with kind 'dock' (a Point)"))
    if not cells:
        fatal.append(GridProblem("no cells to patrol (kind 'comprehensive' or 'special')"))
    if problems and not skip_invalid:
        raise PlanningError(f"grid file {label}: {len(problems) + len(fatal)} problem(s)", problems + fatal)
    if fatal:
        raise PlanningError(f"grid file {label}: nothing to plan", problems + fatal)
    return GridSet(cells, no_fly, docks, projector, tuple(problems), label)


def _read_features(source: str | Path | dict[str, Any]) -> tuple[list[Any], str]:
    """The FeatureCollection's features and a label naming the source in errors."""
    label = "<dict>"
    if isinstance(source, dict):
        data = source
    else:
        text = str(source)
        if isinstance(source, Path) or not text.lstrip().startswith("{"):
            label = text
            try:
                text = Path(text).read_text(encoding="utf-8")
            except OSError as exc:
                raise PlanningError(f"cannot read grid file {label}: {exc.strerror or exc}") from exc
            except UnicodeDecodeError as exc:  # GeoJSON is UTF-8 (RFC 7946)
                raise PlanningError(f"grid file {label} is not UTF-8 text (byte {exc.start}): is it GeoJSON?") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PlanningError(f"grid file {label} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise PlanningError(f"grid file {label} must be a GeoJSON FeatureCollection")
    features = data.get("features")
    if not isinstance(features, list):
        raise PlanningError(f"grid file {label}: 'features' must be a list")
    return features, label


def _check_features(features: list[Any], schedule: ScheduleConfig, problems: list[GridProblem],
                    bad_indices: set[int]) -> list[dict[str, Any]]:
    """Each feature checked on its own (and grid_ids across them); the good ones, parsed."""
    parsed: list[dict[str, Any]] = []
    seen_ids: dict[str, int] = {}
    for index, feature in enumerate(features):
        found = _check_feature(index, feature, schedule)
        gid = found["grid_id"]
        if gid is not None and found["ok_id"]:
            if gid in seen_ids:
                found["problems"].append(GridProblem(
                    f"duplicate grid_id (first used by feature {seen_ids[gid]})", index, gid))
            else:
                seen_ids[gid] = index
        if found["problems"]:
            problems.extend(found["problems"])
            bad_indices.add(index)
        else:
            parsed.append(found)
    return parsed


def _project(parsed: list[dict[str, Any]], problems: list[GridProblem],
             bad_indices: set[int]) -> tuple[Projector, list[dict[str, Any]]]:
    """The UTM projector of the features' area, and the features that map into it, each with its
    geometry in metres (`geom_m`; areas made valid polygons)."""
    if parsed:
        lon0, lat0 = np.median(np.array([p["anchor"] for p in parsed]), axis=0)
    else:
        lon0, lat0 = 119.58, 32.0
    projector = Projector(utm_epsg_for(float(lat0), float(lon0)))
    if parsed:
        geoms_m = projector.geoms_to_m(np.array([p["geom"] for p in parsed], dtype=object))
        # A vertex far outside the area's UTM zone (e.g. a stray [0, 0]) projects to infinity.
        unprojectable = [i for i, g in enumerate(geoms_m) if not np.isfinite(shapely.get_coordinates(g)).all()]
        for i in unprojectable:
            problems.append(GridProblem(f"lies partly too far from the other features to map (EPSG:{projector.epsg}): "
                                        "a stray vertex, such as [0, 0]?", parsed[i]["index"], parsed[i]["grid_id"]))
            bad_indices.add(parsed[i]["index"])
        keep = [i for i in range(len(parsed)) if i not in set(unprojectable)]
        parsed, geoms_m = [parsed[i] for i in keep], geoms_m[keep]
    if parsed:
        polygonal = np.array([p["kind"] != "dock" for p in parsed])
        geoms_m[polygonal] = make_polygonal_valid(geoms_m[polygonal])
        for p, gm in zip(parsed, geoms_m):
            p["geom_m"] = gm
    return projector, parsed


def _check_cell_areas(parsed: list[dict[str, Any]], grid_config: GridConfig, problems: list[GridProblem],
                      bad_indices: set[int]) -> None:
    limit_m2 = grid_config.max_cell_area_km2 * 1e6
    for p in parsed:
        if p["kind"] in CELL_KINDS and p["geom_m"].area > limit_m2:
            problems.append(GridProblem(
                f"cell area {p['geom_m'].area / 1e6:.2f} km2 is over the limit of {grid_config.max_cell_area_km2:g} km2",
                p["index"], p["grid_id"]))
            bad_indices.add(p["index"])


def _check_docks_outside_no_fly(parsed: list[dict[str, Any]], problems: list[GridProblem],
                                bad_indices: set[int]) -> None:
    no_fly_m = shapely.union_all([p["geom_m"] for p in parsed if p["kind"] == "no_fly"]) \
        if any(p["kind"] == "no_fly" for p in parsed) else None
    for p in parsed:
        if p["kind"] == "dock" and no_fly_m is not None and no_fly_m.covers(p["geom_m"]):
            problems.append(GridProblem("dock lies inside a no-fly zone", p["index"], p["grid_id"]))
            bad_indices.add(p["index"])


def _check_feature(index: int, feature: Any, schedule: ScheduleConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"index": index, "grid_id": None, "ok_id": False, "problems": []}
    probs: list[GridProblem] = out["problems"]
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        probs.append(GridProblem("not a GeoJSON Feature", index))
        return out
    props = feature.get("properties") or {}
    if not isinstance(props, dict):
        probs.append(GridProblem("properties must be an object", index))
        return out
    gid = props.get("grid_id")
    if not isinstance(gid, str) or not gid.strip():
        probs.append(GridProblem("missing grid_id (a non-empty string is required)", index,
                                 None if gid is None else str(gid)))
        gid = None if gid is None else str(gid)
    else:
        out["ok_id"] = True
    out["grid_id"] = gid

    def bad(msg: str) -> None:
        probs.append(GridProblem(msg, index, gid))

    kind = props.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        bad(f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
        kind = None  # reported; not looked up below (a list or object as kind cannot be)
    out["kind"] = kind
    out["name"] = str(props.get("name") or "")

    priority = props.get("priority", schedule.default_priority)
    if isinstance(priority, bool) or not isinstance(priority, (int, float)) or not 1 <= priority <= 5 \
            or priority != int(priority):  # the range first: int() of NaN or infinity raises
        bad(f"priority {priority!r} must be an integer 1-5")
        priority = schedule.default_priority
    out["priority"] = int(priority)
    default_revisit = schedule.special_revisit_min if kind == "special" else schedule.comprehensive_revisit_min
    revisit = props.get("revisit_min", default_revisit)
    if isinstance(revisit, bool) or not isinstance(revisit, (int, float)) or not math.isfinite(revisit) or revisit <= 0:
        bad(f"revisit_min {revisit!r} must be a positive number of minutes")
        revisit = default_revisit
    out["revisit_min"] = float(revisit)

    geom = feature.get("geometry")
    expected = {"comprehensive": ("Polygon", "MultiPolygon"), "special": ("Polygon", "MultiPolygon"),
                "no_fly": ("Polygon", "MultiPolygon"), "dock": ("Point",)}.get(kind)
    if not isinstance(geom, dict) or not geom.get("coordinates"):
        bad("empty geometry")
        return out
    gtype = geom.get("type")
    if not isinstance(gtype, str):
        bad(f"geometry type {gtype!r} is not a name (Point, Polygon or MultiPolygon)")
        return out
    if expected and gtype not in expected:
        bad(f"geometry {gtype!r} is wrong for kind {kind!r} (expected {' or '.join(expected)})")
        return out
    if gtype not in ("Point", "Polygon", "MultiPolygon"):
        bad(f"unsupported geometry type {gtype!r}")
        return out
    built = _build_geometry(gtype, geom["coordinates"], bad)
    if built is None:
        return out
    out["geom"] = built
    c = built.representative_point() if gtype != "Point" else built
    out["anchor"] = (c.x, c.y)
    return out


def _build_geometry(gtype: str, coords: Any, bad) -> Any:
    try:
        if gtype == "Point":
            pos = _position(coords)
            if pos is None:
                bad("point is not a [lon, lat] position")
                return None
            if not _in_wgs84(pos, bad, "point"):
                return None
            return Point(pos)
        polys_coords = [coords] if gtype == "Polygon" else coords
        if not isinstance(polys_coords, list) or not polys_coords:
            bad("empty geometry")
            return None
        polys = []
        ok = True
        for pi, rings in enumerate(polys_coords):
            prefix = f"polygon {pi} " if gtype == "MultiPolygon" else ""
            if not isinstance(rings, list) or not rings:
                bad(f"{prefix}has no rings (empty geometry)")
                ok = False
                continue
            clean_rings = []
            for ri, ring in enumerate(rings):
                what = f"{prefix}{'exterior ring' if ri == 0 else f'hole {ri}'}"
                if not isinstance(ring, list) or not ring:
                    bad(f"{what} is empty")
                    ok = False
                    continue
                pts = [_position(p) for p in ring]
                if any(p is None for p in pts):
                    bad(f"{what} has a position that is not [lon, lat]")
                    ok = False
                    continue
                if not _ring_in_range(pts, bad, what):
                    ok = False
                    continue
                if len(pts) < 4:
                    bad(f"{what} has {len(pts)} positions; a closed ring needs at least 4")
                    ok = False
                    continue
                if pts[0] != pts[-1]:
                    bad(f"{what} is not closed (first position {list(pts[0])} != last {list(pts[-1])})")
                    ok = False
                    continue
                clean_rings.append(pts)
            if ok and clean_rings:
                poly = Polygon(clean_rings[0], clean_rings[1:])
                if not poly.is_valid and "Too few points" not in explain_validity(poly):
                    reason = explain_validity(poly)
                    kind = "self-intersecting ring" if "Self-intersection" in reason or "Ring Self" in reason \
                        else "invalid polygon"
                    bad(f"{prefix}{kind}: {reason}")
                    ok = False
                    continue
                if poly.is_empty or poly.area == 0:
                    bad(f"{prefix}has zero area (empty geometry)")
                    ok = False
                    continue
                polys.append(poly)
        if not ok or not polys:
            return None
        geom = polys[0] if gtype == "Polygon" else MultiPolygon(polys)
        if not geom.is_valid:
            bad(f"invalid multipolygon: {explain_validity(geom)}")
            return None
        return geom
    except (TypeError, ValueError) as exc:  # shapely/GEOS refusing odd input
        bad(f"unreadable geometry: {exc}")
        return None


def _position(p: Any) -> tuple[float, float] | None:
    if not isinstance(p, (list, tuple)) or len(p) < 2:
        return None
    x, y = p[0], p[1]
    if isinstance(x, bool) or isinstance(y, bool) or not isinstance(x, (int, float)) or not isinstance(y, (int, float)):
        return None
    if not (math.isfinite(x) and math.isfinite(y)):
        return None
    return (float(x), float(y))


def _in_wgs84(pos: tuple[float, float], bad, what: str) -> bool:
    lon, lat = pos
    if -180 <= lon <= 180 and -90 <= lat <= 90:
        return True
    if -180 <= lat <= 180 and -90 <= lon <= 90:
        bad(f"{what} position {list(pos)} is outside WGS84: latitude {lat:g} is beyond +/-90; "
            "lat/lon look swapped (GeoJSON is [lon, lat])")
    else:
        bad(f"{what} position {list(pos)} is outside WGS84 (lon -180..180, lat -90..90)")
    return False


def _ring_in_range(pts, bad, what: str) -> bool:
    """Report the first out-of-range position of a ring (one line per ring, not per vertex)."""
    for p in pts:
        if not (-180 <= p[0] <= 180 and -90 <= p[1] <= 90):
            return _in_wgs84(p, bad, what)
    return True


def _check_swapped_outliers(parsed: list[dict[str, Any]], problems: list[GridProblem], bad_indices: set[int]) -> None:
    """Flag features far (> 200 km) from the rest whose [lat, lon]-swapped position would fit in."""
    if len(parsed) < 3:
        return
    anchors = np.array([p["anchor"] for p in parsed])
    lon0, lat0 = np.median(anchors, axis=0)
    km_per_deg = 111.2
    for p, (lon, lat) in zip(parsed, anchors):
        d = math.hypot((lon - lon0) * math.cos(math.radians(lat0)), lat - lat0) * km_per_deg
        d_swapped = math.hypot((lat - lon0) * math.cos(math.radians(lat0)), lon - lat0) * km_per_deg
        if d > 200 and d_swapped < 50:
            problems.append(GridProblem(
                f"position ({lon:.5f}, {lat:.5f}) is {d:.0f} km from the other features; lat/lon look "
                "swapped (GeoJSON is [lon, lat])", p["index"], p["grid_id"]))
            bad_indices.add(p["index"])
        elif d > 200:
            problems.append(GridProblem(
                f"position ({lon:.5f}, {lat:.5f}) is {d:.0f} km from the other features", p["index"], p["grid_id"]))
            bad_indices.add(p["index"])
