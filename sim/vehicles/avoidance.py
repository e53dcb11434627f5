"""ArduPilot's Dijkstra object avoidance (OA_TYPE 2) around the stored fence, as Copter flies it.

What the real thing does (libraries/AC_Avoidance/AP_OAPathPlanner.cpp, AP_OADijkstra.cpp):
- OA_TYPE is an "enable" parameter: OA_MARGIN_MAX (default 5 m), OA_OPTIONS and the OA_DB_*
  group only appear once it is non-zero. The planner object is created at boot, so switching
  OA_TYPE to 2 needs a reboot; until then pre-arm says "Dijkstra OA requires reboot" and the
  vehicle flies straight lines.
- With the polygon fence enabled (FENCE_ENABLE and FENCE_TYPE bit 4) and at least one
  inclusion / exclusion polygon or exclusion circle loaded, every wp_nav leg (AUTO waypoints,
  GUIDED targets, RTL's return) is planned as the shortest path through a visibility graph
  whose nodes sit OA_MARGIN_MAX outside exclusion polygons, on an octagon around exclusion
  circles and OA_MARGIN_MAX inside inclusion polygons.
- No path: "Dijkstra: could not find path" (severity 2, repeated every 5 s) and the vehicle
  stops where it is.

Here the graph is built in the vehicle's local east/north metres from the fence list; the
legs are checked against the zones grown by 0.9 x margin (so a leg never grazes a zone, as the
real vehicle's nodes keep it a margin away) and must stay inside every inclusion polygon.
It is the firmware's planner, not ours: the controller's own routing round no-fly zones is
mission_planner.transit.TransitGraph (via flight.avoidance); the two are kept apart so the
simulator copies what the vehicle does (octagons round circles, inclusion nodes) and a change
to our planner cannot make the simulated vehicle agree with it by construction.
"""
from __future__ import annotations

import heapq
import math

import shapely
from shapely.geometry import LineString, Point, Polygon

OA_TYPE_DIJKSTRA, OA_TYPE_DIJKSTRA_BENDYRULER = 2, 3
OA_DIJKSTRA_TYPES = (OA_TYPE_DIJKSTRA, OA_TYPE_DIJKSTRA_BENDYRULER)
ERROR_REPORT_PERIOD_S = 5.0
_OCTAGON_SCALE = 1.0 / math.cos(math.radians(22.5))  # vertices outside the circle+margin


class ObjectAvoidance:
    """One vehicle's object avoidance: whether Dijkstra's was loaded at boot, the fence it plans
    round, its planner (rebuilt when the fence or OA_MARGIN_MAX changes), when it last said
    it found no path."""

    def __init__(self) -> None:
        self.loaded = False
        self.fence_geometry: tuple[list, list, list] = ([], [], [])  # inclusions, exclusions, circles
        self._planner: DijkstraPlanner | None = None
        self._no_path_said_s = -math.inf

    def boot(self, oa_type: float) -> None:
        """At power-on: ArduPilot creates the planner only if OA_TYPE asks for it now."""
        self.loaded = int(oa_type) in OA_DIJKSTRA_TYPES
        self._planner = None

    def set_fence(self, inclusions: list, exclusions: list, circles: list) -> None:
        self.fence_geometry = (inclusions, exclusions, circles)
        self._planner = None  # rebuilt on the next leg, as Dijkstra's notices a changed fence

    def needs_reboot(self, oa_type: float) -> bool:
        return int(oa_type) in OA_DIJKSTRA_TYPES and not self.loaded

    def active(self, oa_type: float, polygon_fence_on: bool) -> bool:
        """Would Dijkstra's plan a leg? Loaded at boot, still selected, polygon fence on, zones loaded."""
        if not self.loaded or int(oa_type) not in OA_DIJKSTRA_TYPES or not polygon_fence_on:
            return False
        incl, excl, circles = self.fence_geometry
        return bool(incl or excl or circles)

    def planner(self, margin_m: float) -> DijkstraPlanner:
        if self._planner is None or self._planner.margin_m != max(0.0, margin_m):
            self._planner = DijkstraPlanner(*self.fence_geometry, margin_m=margin_m)
        return self._planner

    def no_path_report_due(self, now: float) -> bool:
        """"Dijkstra: could not find path" is said at most every ERROR_REPORT_PERIOD_S."""
        if now - self._no_path_said_s < ERROR_REPORT_PERIOD_S:
            return False
        self._no_path_said_s = now
        return True


class DijkstraPlanner:
    """Shortest paths around one fence (metres east/north of home)."""

    def __init__(self, inclusion: list[Polygon], exclusion: list[Polygon],
                 circles: list[tuple[float, float, float]], margin_m: float) -> None:
        self.margin_m = max(0.0, margin_m)
        m = self.margin_m
        keep_out = [p for p in exclusion if not p.is_empty]
        keep_out += [Point(e, n).buffer(r, 16) for e, n, r in circles]
        self.zones = shapely.union_all(keep_out) if keep_out else Polygon()
        self._blocked = self.zones.buffer(0.9 * m, 8) if m > 0 and not self.zones.is_empty else self.zones
        shapely.prepare(self.zones)
        shapely.prepare(self._blocked)
        self.inclusion = [p for p in inclusion if not p.is_empty]
        for p in self.inclusion:
            shapely.prepare(p)
        nodes: list[tuple[float, float]] = []
        for poly in exclusion:
            grown = poly.buffer(m, join_style="mitre", mitre_limit=3.0) if m > 0 else poly
            nodes += _ring_points(grown)
        for e, n, r in circles:
            rr = (r + m) * _OCTAGON_SCALE
            nodes += [(e + rr * math.sin(math.radians(a)), n + rr * math.cos(math.radians(a)))
                      for a in range(0, 360, 45)]
        for poly in self.inclusion:
            inner = poly.buffer(-m, join_style="mitre", mitre_limit=3.0) if m > 0 else poly
            nodes += _ring_points(inner)
        # nodes another zone's margin swallowed, or outside the inclusion fence, are of no use
        self.nodes = [p for p in nodes if not self._blocked.contains(Point(p)) and self._inside(Point(p))]
        k = len(self.nodes)
        self._adj: list[list[tuple[int, float]]] = [[] for _ in range(k)]
        for i in range(k):
            for j in range(i + 1, k):
                if self._clear(self.nodes[i], self.nodes[j]):
                    d = math.dist(self.nodes[i], self.nodes[j])
                    self._adj[i].append((j, d))
                    self._adj[j].append((i, d))

    def _inside(self, geom) -> bool:
        return all(p.covers(geom) for p in self.inclusion)

    def _clear(self, a: tuple[float, float], b: tuple[float, float], *, endpoint: bool = False) -> bool:
        """Does the leg a -> b stay clear? A leg from the vehicle or to the destination that starts
        or ends inside a margin is only held against the zones themselves."""
        if math.dist(a, b) < 1e-6:
            return True
        line = LineString([a, b])
        blocked = self._blocked
        if endpoint and (blocked.contains(Point(a)) or blocked.contains(Point(b))):
            blocked = self.zones
        return not blocked.intersects(line) and self._inside(line)

    def path(self, start: tuple[float, float], goal: tuple[float, float]) -> list[tuple[float, float]] | None:
        """Points to fly through from `start`, `goal` last; [goal] when the straight leg is clear;
        None when there is no path (goal inside a zone, or walled off)."""
        if self._clear(start, goal, endpoint=True):
            return [goal]
        if self.zones.contains(Point(goal)) or not self._inside(Point(goal)):
            return None
        k = len(self.nodes)
        src, dst = k, k + 1
        best = {src: 0.0}
        prev: dict[int, int] = {}
        heap = [(0.0, src)]
        while heap:
            d, x = heapq.heappop(heap)
            if x == dst:
                break
            if d > best.get(x, math.inf):
                continue
            if x == src:
                nbrs = [(j, math.dist(start, self.nodes[j])) for j in range(k)
                        if self._clear(start, self.nodes[j], endpoint=True)]
            else:
                nbrs = list(self._adj[x])
                if self._clear(self.nodes[x], goal, endpoint=True):
                    nbrs.append((dst, math.dist(self.nodes[x], goal)))
            for y, step in nbrs:
                nd = d + step
                if nd < best.get(y, math.inf) - 1e-9:
                    best[y] = nd
                    prev[y] = x
                    heapq.heappush(heap, (nd, y))
        if dst not in prev:
            return None
        out = [goal]
        x = prev[dst]
        while x != src:
            out.append(self.nodes[x])
            x = prev[x]
        return out[::-1]


def _ring_points(geom) -> list[tuple[float, float]]:
    pts: list[tuple[float, float]] = []
    for part in shapely.get_parts(geom):
        if part.is_empty:
            continue
        pts += [tuple(c) for c in list(part.exterior.coords)[:-1]]
    return pts
