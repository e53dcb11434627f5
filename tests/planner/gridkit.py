"""Building small grid FeatureCollections for tests, in metres around a Danyang-like origin."""
from __future__ import annotations

from common.geo import LocalFrame

FRAME = LocalFrame(32.0, 119.58)


def ll(x_m: float, y_m: float) -> list[float]:
    lat, lon = FRAME.to_latlon(x_m, y_m)
    return [round(lon, 8), round(lat, 8)]


def ring(points_m) -> list[list[float]]:
    pts = [ll(x, y) for x, y in points_m]
    return pts + [pts[0]]


def polygon(exterior_m, holes_m=()) -> dict:
    return {"type": "Polygon", "coordinates": [ring(exterior_m)] + [ring(h) for h in holes_m]}


def square(x0: float, y0: float, size: float) -> list[tuple[float, float]]:
    return [(x0, y0), (x0 + size, y0), (x0 + size, y0 + size), (x0, y0 + size)]


def feature(grid_id, kind, geometry, **props) -> dict:
    return {"type": "Feature", "properties": {"grid_id": grid_id, "kind": kind, **props}, "geometry": geometry}


def cell(grid_id, exterior_m, holes_m=(), kind="comprehensive", **props) -> dict:
    return feature(grid_id, kind, polygon(exterior_m, holes_m), **props)


def dock(grid_id, x_m, y_m) -> dict:
    return feature(grid_id, "dock", {"type": "Point", "coordinates": ll(x_m, y_m)})


def no_fly(grid_id, exterior_m) -> dict:
    return feature(grid_id, "no_fly", polygon(exterior_m))


def collection(*features) -> dict:
    return {"type": "FeatureCollection", "features": list(features)}


def small_grid() -> dict:
    """Six 300 m cells in a row (one special, one L-shaped, one holed), a no-fly box across
    cells C3/C4, two docks."""
    return collection(
        cell("C1", square(0, 0, 300)),
        cell("C2", [(300, 0), (600, 0), (600, 300), (450, 300), (450, 150), (300, 150)]),  # L-shape
        cell("C3", square(600, 0, 300)),
        cell("C4", square(900, 0, 300), holes_m=[square(1000, 100, 80)]),
        cell("S1", square(1200, 0, 300), kind="special", revisit_min=30),
        cell("C5", square(1500, 0, 300)),
        no_fly("NF1", [(820, -100), (980, -100), (980, 200), (820, 200)]),
        dock("D1", 150, -200),
        dock("D2", 1650, -200),
    )
