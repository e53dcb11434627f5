"""Grid validation: every problem is reported at once, naming the feature's index and grid_id."""
import copy

import pytest

from mission_planner import PlanningError, load_grids
from mission_planner.config import GridConfig

from .gridkit import cell, collection, dock, feature, ll, no_fly, small_grid, square


def get_problems(data, **kw) -> list[str]:
    with pytest.raises(PlanningError) as info:
        load_grids(data, **kw)
    return [str(p) for p in info.value.problems]


def assert_one_problem_about(problems, index, grid_id, *words):
    hits = [p for p in problems if p.startswith(f"feature {index} (grid_id {grid_id!r})")
            and all(w.lower() in p.lower() for w in words)]
    assert hits, f"no problem naming feature {index} {grid_id!r} with {words}: {problems}"


def test_valid_small_grid_loads_cells_no_fly_and_docks():
    """A clean file gives its cells, zones and docks in metres."""
    grids = load_grids(small_grid())
    assert [c.grid_id for c in grids.cells] == ["C1", "C2", "C3", "C4", "S1", "C5"]
    assert grids.cell("S1").kind == "special" and grids.cell("S1").revisit_min == 30
    assert grids.cell("C1").revisit_min == 120 and grids.cell("C1").priority == 3
    assert abs(grids.cell("C1").area_m2 - 90_000) < 900  # 300 m square, metric projection
    assert [d.grid_id for d in grids.docks] == ["D1", "D2"]
    assert len(grids.no_fly) == 1


def test_unclosed_ring_is_named():
    """A ring whose last position is not its first is reported as not closed."""
    data = small_grid()
    data["features"][0]["geometry"]["coordinates"][0].pop()
    assert_one_problem_about(get_problems(data), 0, "C1", "not closed")


def test_self_intersecting_ring_is_named():
    """A bow-tie ring is reported as self-intersecting."""
    data = small_grid()
    data["features"][2] = cell("C3", [(600, 0), (900, 300), (900, 0), (600, 300)])
    assert_one_problem_about(get_problems(data), 2, "C3", "self-intersect")


def test_empty_geometry_is_named():
    """Null geometry and empty coordinates are both reported as empty."""
    data = small_grid()
    data["features"][0]["geometry"] = None
    data["features"][1]["geometry"] = {"type": "Polygon", "coordinates": []}
    problems = get_problems(data)
    assert_one_problem_about(problems, 0, "C1", "empty geometry")
    assert_one_problem_about(problems, 1, "C2", "empty geometry")


def test_coordinates_outside_wgs84_are_named():
    """A longitude of 200 degrees is outside WGS84."""
    data = small_grid()
    data["features"][0]["geometry"]["coordinates"][0][1] = [200.0, 32.0]
    assert_one_problem_about(get_problems(data), 0, "C1", "outside WGS84")


def test_swapped_lat_lon_out_of_range_is_named():
    """[lat, lon] order puts latitude at 119: reported as likely swapped."""
    data = small_grid()
    data["features"][7]["geometry"]["coordinates"] = [32.0, 119.58]
    assert_one_problem_about(get_problems(data), 7, "D1", "swapped")


def test_swapped_lat_lon_in_range_is_caught_by_distance():
    """Near Frankfurt (50 N, 8.7 E) a swapped [lat, lon] is still valid WGS84, but 4000 km off."""
    def sq(lon, lat, d=0.002):
        return {"type": "Polygon", "coordinates": [[[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]]}

    data = collection(
        feature("F1", "comprehensive", sq(8.70, 50.10)),
        feature("F2", "comprehensive", sq(8.71, 50.10)),
        feature("F3", "comprehensive", sq(50.10, 8.72)),  # swapped
        feature("D1", "dock", {"type": "Point", "coordinates": [8.705, 50.099]}),
    )
    assert_one_problem_about(get_problems(data), 2, "F3", "swapped")


def test_duplicate_grid_id_names_both_features():
    """A second feature reusing a grid_id is reported with the first one's index."""
    data = small_grid()
    data["features"][2]["properties"]["grid_id"] = "C1"
    problems = get_problems(data)
    assert_one_problem_about(problems, 2, "C1", "duplicate grid_id", "feature 0")


def test_unknown_kind_is_named():
    """kind 'park' is not one of the four kinds."""
    data = small_grid()
    data["features"][1]["properties"]["kind"] = "park"
    assert_one_problem_about(get_problems(data), 1, "C2", "unknown kind", "park")


def test_cell_over_size_limit_is_named():
    """A 300 m square is 0.09 km2: over a 0.05 km2 limit."""
    problems = get_problems(small_grid(), grid_config=GridConfig(max_cell_area_km2=0.05))
    assert_one_problem_about(problems, 0, "C1", "over the limit")


def test_no_dock_is_reported():
    """Without a dock nothing can fly."""
    data = small_grid()
    data["features"] = [f for f in data["features"] if f["properties"]["kind"] != "dock"]
    assert any("no dock" in p for p in get_problems(data))


def test_missing_grid_id_bad_priority_and_revisit_are_named():
    """Property errors name the feature by index (and grid_id when there is one)."""
    data = small_grid()
    del data["features"][0]["properties"]["grid_id"]
    data["features"][1]["properties"]["priority"] = 9
    data["features"][2]["properties"]["revisit_min"] = -5
    problems = get_problems(data)
    assert any(p.startswith("feature 0:") and "missing grid_id" in p for p in problems)
    assert_one_problem_about(problems, 1, "C2", "priority")
    assert_one_problem_about(problems, 2, "C3", "revisit_min")


def test_wrong_geometry_for_kind_is_named():
    """A dock must be a Point, a cell a (Multi)Polygon."""
    data = small_grid()
    data["features"][7]["geometry"] = data["features"][0]["geometry"]
    assert_one_problem_about(get_problems(data), 7, "D1", "wrong for kind")


def test_dock_inside_no_fly_zone_is_named():
    """A dock in a no-fly zone could not take off."""
    data = small_grid()
    data["features"].append(dock("D3", 900, 50))
    assert_one_problem_about(get_problems(data), 9, "D3", "inside a no-fly zone")


def test_every_problem_is_listed_at_once():
    """Four broken features give four problems in one error, and nothing is planned."""
    data = small_grid()
    data["features"][0]["geometry"]["coordinates"][0].pop()
    data["features"][1]["properties"]["kind"] = "park"
    data["features"][2]["properties"]["grid_id"] = "C1"
    data["features"][3]["geometry"] = None
    problems = get_problems(data)
    assert len(problems) == 4
    assert [p.split(" ")[1] for p in problems] == ["0", "1", "2", "3"]


def test_skip_invalid_keeps_the_valid_cells_and_lists_the_skipped():
    """--skip-invalid: the broken features are left out and reported, the rest load."""
    data = small_grid()
    data["features"][0]["geometry"]["coordinates"][0].pop()
    data["features"][1]["properties"]["kind"] = "park"
    grids = load_grids(data, skip_invalid=True)
    assert [c.grid_id for c in grids.cells] == ["C3", "C4", "S1", "C5"]
    assert [p.grid_id for p in grids.skipped] == ["C1", "C2"]


def test_skip_invalid_still_fails_without_a_dock():
    """Skipping cannot invent a dock: a file whose only dock is broken still fails."""
    data = collection(cell("C1", square(0, 0, 200)), feature("D1", "dock", {"type": "Point", "coordinates": [32.0, 119.58]}))
    with pytest.raises(PlanningError, match="nothing to plan"):
        load_grids(data, skip_invalid=True)


def test_unreadable_file_and_non_collection_are_errors(tmp_path):
    """Not JSON, or JSON that is not a FeatureCollection, is a PlanningError naming the file."""
    bad = tmp_path / "bad.geojson"
    bad.write_text("{nope")
    with pytest.raises(PlanningError, match="not JSON"):
        load_grids(bad)
    with pytest.raises(PlanningError, match="FeatureCollection"):
        load_grids({"type": "Feature"})
    with pytest.raises(PlanningError, match="cannot read"):
        load_grids(tmp_path / "missing.geojson")


def test_multipolygon_cells_load():
    """A cell made of two blocks (MultiPolygon) is one cell."""
    data = small_grid()
    a = [ll(x, y) for x, y in square(0, 400, 100)]
    b = [ll(x, y) for x, y in square(200, 400, 100)]
    data["features"].append(feature("M1", "comprehensive",
                                    {"type": "MultiPolygon", "coordinates": [[a + [a[0]]], [b + [b[0]]]]}))
    grids = load_grids(data)
    assert grids.cell("M1").polygon_m.geom_type == "MultiPolygon"
    assert copy.deepcopy(grids.cell("M1").area_m2) > 19_000
