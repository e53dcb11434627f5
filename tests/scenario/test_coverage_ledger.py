"""The coverage ledger counts what the camera footprint actually passed over, and when."""
from shapely.geometry import box

from common.geo import offset
from common.values import CameraModel, Pose
from mission_planner.grids import Projector
from runloop.coverage import CoverageLedger

LAT0, LON0 = 32.0, 119.58


def get_ledger():
    """Two 80 m cells side by side (west W, east E), a 640x360 camera at 82 deg HFOV."""
    proj = Projector(32650)
    x0, y0 = (float(v) for v in proj.lonlat_to_m(LON0, LAT0))
    cells = {"W": box(x0, y0, x0 + 80, y0 + 80), "E": box(x0 + 200, y0, x0 + 280, y0 + 80)}
    return CoverageLedger(cells, proj, CameraModel(640, 360, 82.0))


def fly_north(ledger, east_m: float, alt_m: float = 60.0, t0: float = 0.0) -> None:
    """Poses every 5 m along a line from 40 m south to 40 m north of the cells, heading north."""
    for i in range(0, 37):
        lat, lon = offset(LAT0, LON0, -40.0 + 5.0 * i, east_m)
        ledger.observe(Pose(t0 + i, lat, lon, alt_m, alt_m + 10, yaw_deg=0.0), t0 + i)


def test_a_pass_over_a_cell_sees_it_and_not_its_neighbour():
    """Flying the middle of W at 60 m (104 m wide footprint) sees all of W and nothing of E."""
    ledger = get_ledger()
    fly_north(ledger, 40.0)
    assert ledger.fraction("W") > 0.99
    assert ledger.fraction("E") == 0.0
    assert ledger.remaining(["W", "E"]) == ["E"]
    assert ledger.cells["W"].first_seen_s is not None


def test_frames_near_the_ground_are_not_coverage():
    """Take-off and landing frames (below 20 m) do not count as patrol coverage."""
    ledger = get_ledger()
    fly_north(ledger, 40.0, alt_m=8.0)
    assert ledger.fraction("W") == 0.0


def test_a_pass_along_the_edge_sees_part_of_the_cell():
    """A lane 40 m east of W's east edge sees only the 12 m strip within half a footprint (52 m)."""
    ledger = get_ledger()
    fly_north(ledger, 120.0)
    assert 0.1 < ledger.fraction("W") < 0.2
    summary = ledger.summary()
    assert 0 < summary["coverage_pct"] < 100 and summary["cells_seen"] == 0


def test_each_pass_over_a_cell_is_a_visit_and_a_graze_is_not():
    """Two passes over W 600 s apart are two visits of W; a pass beside it (12 m strip) is none."""
    plain = get_ledger()
    ledger = CoverageLedger({g: c.area for g, c in plain.cells.items()}, plain.projector, plain.camera,
                            parts_m={(g, 0): c.area for g, c in plain.cells.items()})
    fly_north(ledger, 40.0, t0=100.0)
    assert ledger.update_visits() == [("W", 0)]
    fly_north(ledger, 120.0, t0=400.0)  # along W's edge
    assert ledger.update_visits() == []
    fly_north(ledger, 40.0, t0=700.0)
    ledger.update_visits()
    assert ledger.parts[("W", 0)].visits_s == [129.0, 729.0]
    assert ledger.last_visits() == {("W", 0): 729.0}
    assert ledger.summary()["parts"][0] == {"grid_id": "W", "part": 0, "area_m2": 6400.0, "visits_s": [129.0, 729.0]}
