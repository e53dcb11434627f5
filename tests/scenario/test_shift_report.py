"""The shift section of the report (runloop/shift_report.py): visits, longest gaps against the
revisit target, the coverage-over-time chart's figures and the max_revisit_gap_s criterion."""
from runloop.shift_report import coverage_over_time, shift_failures, shift_summary

CELLS = {"S1": {"kind": "special", "revisit_s": 300.0}, "C1": {"kind": "comprehensive", "revisit_s": 600.0}}
COVERAGE = {"parts": [
    {"grid_id": "S1", "part": 0, "area_m2": 100.0, "visits_s": [100.0, 350.0, 650.0, 900.0]},
    {"grid_id": "C1", "part": 0, "area_m2": 200.0, "visits_s": [200.0, 900.0]},
    {"grid_id": "C1", "part": 1, "area_m2": 100.0, "visits_s": [250.0]},
]}
LOST = {"drone_lost": [{"t_s": 400.0, "drone_id": "drone02", "reason": "not back on its dock",
                        "cells_returned": ["C1"]}]}


def test_each_cell_has_its_visits_and_longest_gap_against_its_target():
    s = shift_summary(COVERAGE, CELLS, LOST, end_s=1000.0)
    assert s["cells"]["S1"] == {"kind": "special", "target_s": 300.0, "visits": 4, "longest_gap_s": 300.0,
                                "within_target": True}
    # C1's second part was seen once, at 250 s: unseen for the last 750 s of the run.
    assert s["cells"]["C1"] == {"kind": "comprehensive", "target_s": 600.0, "visits": 1, "longest_gap_s": 750.0,
                                "within_target": False}
    assert s["longest_gap_s"] == {"special": 300.0, "comprehensive": 750.0}
    assert s["drones_lost"][0]["cells_returned"] == ["C1"]


def test_coverage_over_time_is_the_area_share_seen_within_target():
    share = dict(coverage_over_time(COVERAGE["parts"], {g: c["revisit_s"] for g, c in CELLS.items()}, 1000.0))
    assert share[0.0] == 0.0
    assert share[300.0] == 1.0  # every part seen within its target
    assert share[860.0] == 0.25  # both parts of C1 last seen over 600 s before: only S1 (100 of 400 m2)
    assert share[900.0] == 0.75  # C1 part 0 seen again; part 1 (seen at 250 s) is still overdue


def test_max_revisit_gap_fails_the_cells_unseen_for_longer():
    s = shift_summary(COVERAGE, CELLS, {}, end_s=1000.0)
    assert shift_failures(s, {"max_revisit_gap_s": {"special": 300.0, "comprehensive": 700.0}}) == [
        "comprehensive cells unseen for longer than 700 s: C1 750 s"]
    assert shift_failures(s, {"max_revisit_gap_s": {"special": 299.0}}) == [
        "special cells unseen for longer than 299 s: S1 300 s"]
    assert shift_failures(s, {}) == []


def test_drones_idle_on_the_dock_while_a_cell_was_overdue_are_summed():
    idle = {"idle_while_overdue": [{"t_s": 700.0, "drone_id": "drone01", "seconds": 30.0},
                                   {"t_s": 730.0, "drone_id": "drone03", "seconds": 12.5}]}
    assert shift_summary(COVERAGE, CELLS, idle, end_s=1000.0)["idle_while_overdue_s"] == 42.5
    assert shift_summary(COVERAGE, CELLS, {}, end_s=1000.0)["idle_while_overdue_s"] == 0.0
