"""Returning home without crossing a no-fly zone of the sortie's fence.

A drone sent home (the energy watch, the vehicle's own battery or GCS failsafe) flies RTL: a
straight line, which can cut through an exclusion zone of its fence. Two ways to avoid that:

- Onboard, as ArduCopter does it: object avoidance with Dijkstra's planner (OA_TYPE 2) plans
  every AUTO leg, GUIDED target and RTL return round the fence's exclusion polygons / circles,
  OA_MARGIN_MAX from them, and keeps inside the inclusion fence. OA_TYPE is read at boot (the
  vehicle says "PreArm: Dijkstra OA requires reboot" until then), so a disarmed vehicle is
  rebooted once after it is switched on; the OA_* names are the same in 4.5, 4.6 and 4.7+.
  This also covers the failsafes that act while we cannot reach the vehicle.
- Controller-flown, when the vehicle cannot (a build without OA_TYPE, a refused set, armed
  when it would need the reboot): GUIDED waypoints round the zones, computed with the
  planner's `TransitGraph`, then RTL from a point with a clear line home.

`flight.mission.enable_fence_avoidance()` runs after a sortie's fence is uploaded and leaves the
verdict (a `FenceAvoidance`) on `vehicle.fence_avoidance`; `vehicle.action.return_home()` uses
it. This module is only the geometry and that verdict: it needs no vehicle.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from shapely.geometry import LineString, Point, Polygon, box

from common.geo import LocalFrame, distance_m
from common.values import FenceZone
from flight.errors import FlightError

OA_TYPE_DIJKSTRA = 2


@dataclass(frozen=True, slots=True)
class NoFlyZones:
    """A sortie fence as the controller routes round it: exclusion zones to stay out of (by
    `margin_m`) and the inclusion zones to stay in, all in lat/lon."""

    exclusions: tuple[FenceZone, ...]
    inclusions: tuple[FenceZone, ...] = ()
    margin_m: float = 10.0

    @classmethod
    def from_fence(cls, fence: tuple[FenceZone, ...], margin_m: float) -> "NoFlyZones":
        return cls(tuple(z for z in fence if not z.inclusion), tuple(z for z in fence if z.inclusion), margin_m)

    def crosses(self, start: tuple[float, float], goal: tuple[float, float]) -> bool:
        """Does the straight line start -> goal (lat, lon) come within half the margin of a zone?"""
        graph, frame = _graph(self)
        return not graph.clear(frame.to_en(*start), frame.to_en(*goal))

    def route(self, start: tuple[float, float], goal: tuple[float, float]) -> tuple[tuple[float, float], ...]:
        """(lat, lon) points from start to goal (goal last, start not included) that stay clear of
        every zone; just (goal,) when the straight line is clear. FlightError when walled off."""
        graph, frame = _graph(self)
        a, b = frame.to_en(*start), frame.to_en(*goal)
        lead: list[tuple[float, float]] = []
        try:
            if graph.has_zones and graph.avoid.contains(Point(a)) and len(graph.nodes):
                # inside a zone's margin already: first out to the nearest outline point that is
                # reached without entering the zone itself, then round from there
                zones = graph.avoid.buffer(-0.5 * max(self.margin_m, 2.0))
                exits = sorted(map(tuple, graph.nodes), key=lambda p: (p[0] - a[0]) ** 2 + (p[1] - a[1]) ** 2)
                step = next((p for p in exits if not zones.intersects(LineString([a, p]))), None)
                if step is None:
                    raise ValueError("boxed in inside a zone's margin")
                lead, a = [step], step
            pts = lead + graph.path(a, b)
        except ValueError as exc:
            raise FlightError(f"no way from {start[0]:.6f},{start[1]:.6f} to {goal[0]:.6f},{goal[1]:.6f} "
                              f"round the fence's no-fly zones: {exc}") from exc
        out = [frame.to_latlon(e, n) for e, n in pts[:-1]]
        return (*out, goal)


@functools.lru_cache(maxsize=32)
def _graph(zones: NoFlyZones):
    # the planner's visibility graph, in a flat frame round the fence; outside the inclusion
    # fence counts as a zone too, so detours never leave it
    from mission_planner.transit import TransitGraph

    all_zones = zones.exclusions + zones.inclusions
    lat0, lon0 = all_zones[0].vertices[0] if all_zones else (0.0, 0.0)
    frame = LocalFrame(lat0, lon0)
    polys = [_zone_polygon(z, frame) for z in zones.exclusions]
    for z in zones.inclusions:
        inside = _zone_polygon(z, frame)
        minx, miny, maxx, maxy = inside.bounds
        polys.append(box(minx - 1000, miny - 1000, maxx + 1000, maxy + 1000).difference(inside))
    return TransitGraph([p for p in polys if not p.is_empty], zones.margin_m), frame


def _zone_polygon(z: FenceZone, frame: LocalFrame) -> Polygon:
    if z.is_circle:
        return Point(*frame.to_en(*z.vertices[0])).buffer(z.radius_m, 16)
    poly = Polygon([frame.to_en(lat, lon) for lat, lon in z.vertices])
    return poly if poly.is_valid else poly.buffer(0)


@dataclass(frozen=True, slots=True)
class FenceAvoidance:
    """How this vehicle keeps out of its sortie's no-fly zones on the way home."""

    no_fly: NoFlyZones
    onboard: bool  # the vehicle plans round them itself (OA_TYPE 2 loaded)
    detail: str    # why, in words for the operator
    rally: tuple[tuple[float, float], ...] = ()  # the sortie's rally points (lat, lon)

    def rtl_destination(self, here: tuple[float, float], home: tuple[float, float]) -> tuple[float, float]:
        """Where RTL started at `here` flies: the nearest of home and the rally points, as
        ArduCopter chooses with rally points loaded (RALLY_INCL_HOME=1, its default)."""
        return min((home, *self.rally), key=lambda p: distance_m(*here, *p))

    def return_crosses(self, here: tuple[float, float], home: tuple[float, float]) -> bool:
        """Would RTL from here fly straight through a no-fly zone?"""
        return self.no_fly.crosses(here, self.rtl_destination(here, home))

    def return_legs(self, here: tuple[float, float], home: tuple[float, float]) -> tuple[tuple[float, float], ...]:
        """Points to fly in GUIDED before RTL so that no leg crosses a zone: round the zones
        towards where RTL from here would go. When RTL from the last of them would turn for
        another rally point instead, the destination itself is the last point (RTL over it lands
        there). Empty: RTL from here is clear. FlightError when walled off."""
        goal = self.rtl_destination(here, home)
        pts = self.no_fly.route(here, goal)
        legs = pts[:-1]
        if legs and self.rtl_destination(legs[-1], home) != goal:
            return pts
        return legs
