"""Geodesy helpers used by every package: one place for distances, bearings and local frames.

Distances are great-circle (haversine) on a spherical Earth; good to well under 0.5 % over a
city, which is all a patrol needs. Planning geometry that must be exact in metres uses a UTM
projection through pyproj (`utm_crs_for`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

EARTH_RADIUS_M = 6_371_008.8


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres.

    >>> round(distance_m(32.0, 119.58, 32.001, 119.58), 1)
    111.2
    """
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial bearing from point 1 to point 2, degrees clockwise from true north in [0, 360).

    >>> round(bearing_deg(32.0, 119.58, 32.0, 119.59))
    90
    """
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    x = math.sin(dl) * math.cos(p2)
    y = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(x, y)) % 360.0


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """The point `north_m`/`east_m` metres from (lat, lon), returned as (lat, lon)."""
    dlat = north_m / EARTH_RADIUS_M
    dlon = east_m / (EARTH_RADIUS_M * math.cos(math.radians(lat)))
    return lat + math.degrees(dlat), lon + math.degrees(dlon)


def destination(lat: float, lon: float, bearing: float, dist_m: float) -> tuple[float, float]:
    """The point `dist_m` metres from (lat, lon) along `bearing` degrees."""
    b = math.radians(bearing)
    return offset(lat, lon, dist_m * math.cos(b), dist_m * math.sin(b))


@dataclass(frozen=True, slots=True)
class LocalFrame:
    """A flat east/north frame in metres around an origin (equirectangular).

    Accurate to centimetres within a few kilometres of the origin; cheap enough for per-frame
    vision and per-tick simulation. Use `utm_crs_for` for city-wide planning geometry.

    >>> f = LocalFrame(32.0, 119.58)
    >>> e, n = f.to_en(*f.to_latlon(120.0, -45.0))
    >>> round(e, 6), round(n, 6)
    (120.0, -45.0)
    """

    lat0: float
    lon0: float

    @property
    def _m_per_deg_lat(self) -> float:
        return math.radians(1.0) * EARTH_RADIUS_M

    @property
    def _m_per_deg_lon(self) -> float:
        return math.radians(1.0) * EARTH_RADIUS_M * math.cos(math.radians(self.lat0))

    def to_en(self, lat: float, lon: float) -> tuple[float, float]:
        """(east_m, north_m) of a lat/lon."""
        return ((lon - self.lon0) * self._m_per_deg_lon, (lat - self.lat0) * self._m_per_deg_lat)

    def to_latlon(self, east_m: float, north_m: float) -> tuple[float, float]:
        """(lat, lon) of a point given in this frame."""
        return (self.lat0 + north_m / self._m_per_deg_lat, self.lon0 + east_m / self._m_per_deg_lon)


def utm_epsg_for(lat: float, lon: float) -> int:
    """EPSG code of the WGS84 UTM zone holding (lat, lon); Danyang is zone 50N (32650).

    >>> utm_epsg_for(32.0, 119.58)
    32650
    """
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


def outer_rings_latlon(geom) -> list[list[tuple[float, float]]]:
    """The outer rings of a shapely (Multi)Polygon in lon/lat, as [(lat, lon), ...] lists
    rounded to 7 decimals (~1 cm): how cells are drawn and stored."""
    polys = list(geom.geoms) if hasattr(geom, "geoms") else [geom]
    return [[(round(y, 7), round(x, 7)) for x, y in p.exterior.coords] for p in polys]
