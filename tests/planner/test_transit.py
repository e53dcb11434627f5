"""Transit round no-fly zones: paths never touch a zone, and planning distances match flown ones."""
import math

import numpy as np
import shapely
from shapely.geometry import LineString, Point, box

from mission_planner.transit import TransitGraph


def get_graph():
    zones = [box(0, 0, 100, 1000), Point(400, 300).buffer(80), box(600, -200, 700, 200)]
    return TransitGraph(zones, 10.0), shapely.union_all(zones)


def test_path_goes_round_the_wall_and_stays_clear():
    """From one side of a 1 km wall to the other: a path round its end, nothing touching a zone."""
    graph, zones = get_graph()
    a, b = (-200.0, 500.0), (300.0, 500.0)
    pts = [a, *graph.path(a, b)]
    line = LineString(pts)
    assert not line.intersects(zones)
    assert line.length > math.dist(a, b) + 500  # had to go round an end of the wall
    assert pts[-1] == b


def test_distance_matrix_matches_the_paths_flown():
    """The matrix the packer uses equals the length of the path later flown, for every pair."""
    graph, zones = get_graph()
    rng = np.random.default_rng(7)
    pts = rng.uniform([-300, -400], [900, 1200], (40, 2))
    pts = pts[~shapely.intersects_xy(graph.avoid, pts[:, 0], pts[:, 1])]
    d = graph.distance_matrix(pts)
    assert np.allclose(d, d.T)
    for i in range(len(pts)):
        for j in range(len(pts)):
            flown = LineString([pts[i], *graph.path(pts[i], pts[j])]) if i != j else None
            if flown is None:
                continue
            assert not flown.intersects(zones)
            assert math.isclose(flown.length, d[i, j], rel_tol=1e-6, abs_tol=1e-6)


def test_clear_legs_agrees_with_geos_on_random_legs():
    """The fast leg check gives GEOS's answer, for single legs and for big batches."""
    graph, _ = get_graph()
    rng = np.random.default_rng(3)
    a = rng.uniform([-300, -400], [900, 1200], (400, 2))
    b = rng.uniform([-300, -400], [900, 1200], (400, 2))
    exact = ~shapely.intersects(shapely.linestrings(np.stack([a, b], axis=1)), graph.avoid)
    assert (graph.clear_legs(a, b) == exact).all()
    assert [graph.clear(p, q) for p, q in zip(a[:60], b[:60])] == list(exact[:60])
