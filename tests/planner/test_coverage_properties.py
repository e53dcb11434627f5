"""Property tests: any convex, concave or holed cell (with or without a no-fly zone across it)
is seen >= 99 %, no mission enters a no-fly zone, and every sortie fits one battery."""
import math
import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, MultiPoint, Polygon

from mission_planner import load_grids, plan_patrol

from .conftest import fast_config
from .geometry_checks import assert_clear_of_no_fly, assert_within_endurance, get_measured_coverage
from .gridkit import cell, collection, dock, no_fly

# The suite runs a fixed, small set of examples (same every run, so CI is repeatable);
# PLANNER_PROPERTY_EXAMPLES=300 searches fresh random examples more deeply.
_DEEP = os.environ.get("PLANNER_PROPERTY_EXAMPLES")
PROPERTY_SETTINGS = settings(max_examples=int(_DEEP or "12"), derandomize=not _DEEP, deadline=None, suppress_health_check=[HealthCheck.too_slow])

sizes = st.floats(min_value=120, max_value=900)
angles = st.floats(min_value=0, max_value=math.pi)


@st.composite
def convex_cells(draw):
    size = draw(sizes)
    pts = draw(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=4, max_size=12))
    hull = MultiPoint([(x * size, y * size * draw(st.floats(0.3, 1.0))) for x, y in pts]).convex_hull
    if hull.geom_type != "Polygon" or hull.area < 2000:
        hull = Polygon([(0, 0), (size, 0), (size, size / 2), (0, size / 2)])
    return list(hull.exterior.coords)[:-1], []


@st.composite
def concave_cells(draw):
    """Star-shaped polygons: radii vary wildly around the centre, so edges fold inwards."""
    n = draw(st.integers(5, 14))
    r_max = draw(sizes) / 2
    radii = draw(st.lists(st.floats(0.25, 1.0), min_size=n, max_size=n))
    offset = draw(angles)
    pts = [(r_max * r * math.cos(offset + 2 * math.pi * i / n), r_max * r * math.sin(offset + 2 * math.pi * i / n))
           for i, r in enumerate(radii)]
    return pts, []


@st.composite
def holed_cells(draw):
    size = draw(st.floats(min_value=250, max_value=900))
    hole = draw(st.floats(0.1, 0.35)) * size
    hx = draw(st.floats(0.15, 0.85 - hole / size)) * size
    hy = draw(st.floats(0.15, 0.85 - hole / size)) * size
    outer = [(0, 0), (size, 0), (size, size * 0.8), (size * 0.5, size), (0, size)]
    inner = [(hx, hy), (hx + hole, hy), (hx + hole, hy + hole), (hx, hy + hole)]
    return outer, [inner]


def plan_single_cell(exterior, holes, no_fly_strip=None, special=False):
    cx = float(np.mean([p[0] for p in exterior]))
    feats = [cell("X1", exterior, holes, kind="special" if special else "comprehensive"),
             dock("D1", cx - 700, -900)]
    if no_fly_strip is not None:
        feats.append(no_fly("NF", no_fly_strip))
    grids = load_grids(collection(*feats))
    return plan_patrol(grids, fast_config(drones=2))


def strip_across(exterior, frac: float, width: float):
    """A no-fly strip crossing the cell's bounding box vertically, wider than the cell is tall."""
    xs = [p[0] for p in exterior]
    ys = [p[1] for p in exterior]
    x = min(xs) + frac * (max(xs) - min(xs))
    return [(x, min(ys) - 300), (x + width, min(ys) - 300), (x + width, max(ys) + 300), (x, max(ys) + 300)]


def assert_plan_good(plan):
    measured = get_measured_coverage(plan)
    for gid, got in measured.items():
        assert got >= 0.99, f"{gid}: measured coverage {got:.4f}"
        assert plan.cells[gid].coverage >= 0.99
    assert_clear_of_no_fly(plan)
    assert_within_endurance(plan)


@PROPERTY_SETTINGS
@given(convex_cells())
def test_convex_cells_are_covered(shape):
    """Random convex cells: measured coverage >= 99 %, sorties within endurance."""
    assert_plan_good(plan_single_cell(*shape))


@PROPERTY_SETTINGS
@given(concave_cells())
def test_concave_cells_are_covered(shape):
    """Random star-shaped (concave) cells: measured coverage >= 99 %."""
    assert_plan_good(plan_single_cell(*shape))


@PROPERTY_SETTINGS
@given(holed_cells())
def test_holed_cells_are_covered(shape):
    """Cells with a hole: the ring around the hole is still seen >= 99 %."""
    assert_plan_good(plan_single_cell(*shape))


@PROPERTY_SETTINGS
@given(st.one_of(convex_cells(), concave_cells(), holed_cells()), st.floats(0.2, 0.7), st.floats(20, 120))
def test_no_fly_strip_across_a_cell_is_avoided_and_the_rest_covered(shape, frac, width):
    """A no-fly strip cutting the cell: nothing enters it and what is left is still seen >= 99 %."""
    exterior, holes = shape
    assert_plan_good(plan_single_cell(exterior, holes, strip_across(exterior, frac, width)))


@PROPERTY_SETTINGS
@given(st.one_of(convex_cells(), concave_cells()), st.floats(-600, 600), st.floats(300, 1500))
def test_transit_goes_round_a_no_fly_wall_between_dock_and_cell(shape, shift, half_width):
    """A no-fly wall lies across the way from the dock: every leg goes round it, the cell is still seen."""
    exterior, holes = shape
    cx = float(np.mean([p[0] for p in exterior]))
    y_min = min(p[1] for p in exterior)
    wall = [(cx + shift - half_width, y_min - 450), (cx + shift + half_width, y_min - 450),
            (cx + shift + half_width, y_min - 380), (cx + shift - half_width, y_min - 380)]
    grids = load_grids(collection(cell("X1", exterior, holes), dock("D1", cx, y_min - 900), no_fly("WALL", wall)))
    plan = plan_patrol(grids, fast_config(drones=1))
    assert_plan_good(plan)
    for s in plan.sorties:
        route = s.route_m
        entry = int(np.flatnonzero(s.sweep_of > 0)[0])
        blocked = LineString([route[0], route[entry]]).intersects(grids.no_fly_union_m)
        along = float(np.hypot(*np.diff(route[:entry + 1], axis=0).T).sum())
        if blocked:  # the straight way in crosses the wall: the route took a longer one round it
            assert along > math.dist(route[0], route[entry]) + 1.0
