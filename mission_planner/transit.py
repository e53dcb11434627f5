"""Transit around no-fly zones: a visibility graph over the zones' keep-out outlines.

Three nested outlines per zone, so nothing ever grazes a zone:
  no-fly zone  <  `avoid` (zone + margin/2): no leg may touch it
               <  lanes are trimmed at zone + margin, graph nodes sit on zone + margin.
A leg between two points is flown straight when it clears `avoid`; otherwise it follows the
shortest path through the graph nodes. All-pairs node distances are precomputed (few dozen
nodes), so distance matrices for hundreds of points cost a few numpy operations.
"""
from __future__ import annotations

import heapq
import math

import numpy as np
import shapely
from shapely.geometry import Polygon


class TransitGraph:
    def __init__(self, no_fly_m, margin_m: float) -> None:
        zones = [z for z in no_fly_m if not z.is_empty]
        self.margin_m = margin_m
        if not zones:
            self.avoid = Polygon()
            self.nodes = np.zeros((0, 2))
            self._node_dist = np.zeros((0, 0))
            return
        union = shapely.union_all(zones)
        self.avoid = union.buffer(max(margin_m, 2.0) * 0.5, quad_segs=4)
        shapely.prepare(self.avoid)
        # Tiles of the keep-out in an STRtree: a long diagonal corridor has a city-sized bounding
        # box, its 500 m tiles do not, so most legs are cleared by bounding boxes alone.
        minx, miny, maxx, maxy = self.avoid.bounds
        gx, gy = np.meshgrid(np.arange(minx, maxx, 500.0), np.arange(miny, maxy, 500.0))
        tiles = shapely.intersection(shapely.box(gx.ravel(), gy.ravel(), gx.ravel() + 500.0, gy.ravel() + 500.0),
                                     self.avoid)
        tiles = tiles[~shapely.is_empty(tiles)]
        self._tree = shapely.STRtree(tiles)
        self._tile_boxes = shapely.bounds(tiles)  # (T, 4) for the numpy pre-filter
        outline = union.buffer(max(margin_m, 2.0), quad_segs=2, join_style="mitre", mitre_limit=3.0)
        rings = []
        for poly in shapely.get_parts(outline):
            rings.append(np.asarray(poly.exterior.coords)[:-1])
            rings.extend(np.asarray(r.coords)[:-1] for r in poly.interiors)
        nodes = np.concatenate(rings) if rings else np.zeros((0, 2))
        # Drop nodes another zone's keep-out swallowed (zones closer than two margins).
        ok = ~shapely.intersects_xy(self.avoid, nodes[:, 0], nodes[:, 1]) if len(nodes) else np.zeros(0, bool)
        self.nodes = nodes[ok]
        k = len(self.nodes)
        vis = self._clear_pairs(np.repeat(self.nodes, k, axis=0), np.tile(self.nodes, (k, 1))).reshape(k, k)
        d = np.hypot(*(self.nodes[:, None, :] - self.nodes[None, :, :]).transpose(2, 0, 1))
        dist = np.where(vis, d, np.inf)
        np.fill_diagonal(dist, 0.0)
        for m in range(k):  # Floyd-Warshall; k is a few dozen
            dist = np.minimum(dist, dist[:, m:m + 1] + dist[m:m + 1, :])
        self._node_dist = dist

    @property
    def has_zones(self) -> bool:
        return not self.avoid.is_empty

    def _clear_pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Vectorised: does the straight leg a[i] -> b[i] stay clear of the keep-out?"""
        a = np.asarray(a, float).reshape(-1, 2)
        b = np.asarray(b, float).reshape(-1, 2)
        if not self.has_zones or len(a) == 0:
            return np.ones(len(a), bool)
        out = np.ones(len(a), bool)
        if len(a) > 64:  # big batches: GEOS through the tree is cheaper than the numpy test below
            pb = b.copy()
            pb[np.all(np.abs(a - pb) < 1e-9, axis=1)] += 1e-6  # keep zero-length legs valid linestrings
            out[self._tree.query(shapely.linestrings(np.stack([a, pb], axis=1)), predicate="intersects")[0]] = False
            return out
        # Single legs (route building asks thousands of times): an exact segment-vs-box test in
        # numpy first (bounding boxes overlap and the box is not all on one side of the segment's
        # line), so legs that touch no tile box never pay for a GEOS call.
        cand = np.zeros(len(a), bool)
        boxes = self._tile_boxes
        cx = np.stack([boxes[:, 0], boxes[:, 2], boxes[:, 2], boxes[:, 0]], axis=1)  # (T, 4) corners
        cy = np.stack([boxes[:, 1], boxes[:, 1], boxes[:, 3], boxes[:, 3]], axis=1)
        for lo in range(0, len(a), 8192):
            pa, pb = a[lo:lo + 8192], b[lo:lo + 8192]
            mn, mx = np.minimum(pa, pb), np.maximum(pa, pb)
            overlap = ((mx[:, None, 0] >= boxes[None, :, 0]) & (mn[:, None, 0] <= boxes[None, :, 2])
                       & (mx[:, None, 1] >= boxes[None, :, 1]) & (mn[:, None, 1] <= boxes[None, :, 3]))
            dx, dy = (pb - pa)[:, 0], (pb - pa)[:, 1]
            side = (dx[:, None, None] * (cy[None] - pa[:, 1, None, None])
                    - dy[:, None, None] * (cx[None] - pa[:, 0, None, None]))  # (N, T, 4)
            straddles = (side.max(axis=2) >= 0) & (side.min(axis=2) <= 0)
            cand[lo:lo + 8192] = (overlap & straddles).any(axis=1)
        idx = np.flatnonzero(cand)
        if len(idx):
            pa, pb = a[idx], b[idx].copy()
            pb[np.all(np.abs(pa - pb) < 1e-9, axis=1)] += 1e-6  # keep zero-length legs valid linestrings
            lines = shapely.linestrings(np.stack([pa, pb], axis=1))
            out[idx[self._tree.query(lines, predicate="intersects")[0]]] = False
        return out

    def clear(self, a, b) -> bool:
        return bool(self._clear_pairs(np.asarray(a)[None], np.asarray(b)[None])[0])

    def clear_legs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self._clear_pairs(a, b)

    def _to_nodes(self, pts: np.ndarray) -> np.ndarray:
        """(N, K) straight distance from each point to each node it can see (inf otherwise)."""
        n, k = len(pts), len(self.nodes)
        a = np.repeat(pts, k, axis=0)
        b = np.tile(self.nodes, (n, 1))
        vis = self._clear_pairs(a, b).reshape(n, k)
        d = np.hypot(a[:, 0] - b[:, 0], a[:, 1] - b[:, 1]).reshape(n, k)
        return np.where(vis, d, np.inf)

    def distance_matrix(self, a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        """(len(a), len(b)) flight distances in metres, going round no-fly zones where needed.

        With b omitted the matrix is a-to-a and only its upper triangle is checked.
        """
        a = np.asarray(a, float).reshape(-1, 2)
        sym = b is None
        b = a if sym else np.asarray(b, float).reshape(-1, 2)
        d = np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])
        if not self.has_zones or len(self.nodes) == 0:
            return d
        if sym:
            ia, ib = np.triu_indices(len(a), 1)
        else:
            ia, ib = (x.ravel() for x in np.meshgrid(np.arange(len(a)), np.arange(len(b)), indexing="ij"))
        ok = np.ones(d.shape, bool)
        ok[ia, ib] = self._clear_pairs(a[ia], b[ib])
        if sym:
            ok &= ok.T
        if ok.all():
            return d
        rows = np.flatnonzero(~ok.all(axis=1))
        cols = np.flatnonzero(~ok.all(axis=0))
        da = self._to_nodes(a[rows])                      # (R, K)
        db = da if sym else self._to_nodes(b[cols])       # (C, K); rows == cols when symmetric
        via = np.min(da[:, :, None] + self._node_dist[None, :, :], axis=1)  # (R, K): a -> graph -> node
        detour = np.min(via[:, None, :] + db[None, :, :], axis=2)          # (R, C)
        sub = d[np.ix_(rows, cols)]
        blocked = ~ok[np.ix_(rows, cols)]
        sub[blocked] = detour[blocked]
        d[np.ix_(rows, cols)] = sub
        return d

    def path(self, a, b) -> list[tuple[float, float]]:
        """Waypoints from a to b (b included, a not) that stay clear of every no-fly zone."""
        a = tuple(map(float, a))
        b = tuple(map(float, b))
        if self.clear(a, b):
            return [b]
        k = len(self.nodes)
        da = self._to_nodes(np.array([a]))[0]
        db = self._to_nodes(np.array([b]))[0]
        # Dijkstra on nodes with the precomputed closure: best = min_u,v da[u] + D[u,v] + db[v];
        # then expand D[u,v] into node hops by a plain Dijkstra over direct visibility.
        total = da[:, None] + self._node_dist + db[None, :]
        if k == 0 or not np.isfinite(total).any():
            raise ValueError(f"no clear path from {a} to {b} around the no-fly zones")
        u, v = np.unravel_index(np.argmin(total), total.shape)
        return [tuple(self.nodes[u])] + [tuple(p) for p in self._node_hops(int(u), int(v))] + [b]

    def _node_hops(self, u: int, v: int) -> list[np.ndarray]:
        """Intermediate nodes after u up to and including v (empty when u == v)."""
        if u == v:
            return []
        k = len(self.nodes)
        direct = self._clear_pairs(np.repeat(self.nodes[[u]], k, axis=0), self.nodes)
        prev = {u: -1}
        best = {u: 0.0}
        heap = [(0.0, u)]
        while heap:
            d, x = heapq.heappop(heap)
            if x == v:
                break
            if d > best.get(x, math.inf):
                continue
            nbr = self._clear_pairs(np.repeat(self.nodes[[x]], k, axis=0), self.nodes) if x != u else direct
            step = np.hypot(*(self.nodes - self.nodes[x]).T)
            for y in np.flatnonzero(nbr):
                nd = d + step[y]
                if nd < best.get(int(y), math.inf) - 1e-9:
                    best[int(y)] = nd
                    prev[int(y)] = x
                    heapq.heappush(heap, (nd, int(y)))
        hops = []
        x = v
        while x != u:
            hops.append(self.nodes[x])
            x = prev[x]
        return hops[::-1]

    def route(self, points: np.ndarray) -> np.ndarray:
        """The polyline through `points` with detours spliced into every leg that is not clear."""
        pts = np.asarray(points, float).reshape(-1, 2)
        if len(pts) < 2 or not self.has_zones:
            return pts
        ok = self._clear_pairs(pts[:-1], pts[1:])
        if ok.all():
            return pts
        out = [pts[0]]
        for i in range(len(pts) - 1):
            if ok[i]:
                out.append(pts[i + 1])
            else:
                out.extend(np.asarray(p) for p in self.path(pts[i], pts[i + 1]))
        return np.asarray(out)
