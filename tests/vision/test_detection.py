"""Incident detection on synthetic scenes with a moving camera and ground truth.

Targets from the issue: recall >= 0.9 per kind, geolocation <= 10 m at 60 m AGL, fire and
intrusion reported <= 300 ms after first visible, crowds and stopped vehicles <= 1 s after the
condition is met, and no false alerts on calm footage.
"""
from __future__ import annotations

import pytest

from common.geo import distance_m
from sim.camera import scenarios
from vision import VisionConfig

from .helpers import false_alerts, match_truth, run_scenario

STATIONARY_S = 6.0


@pytest.fixture(scope="module")
def fire_run():
    return run_scenario(scenarios.fires())


@pytest.fixture(scope="module")
def crowd_run():
    return run_scenario(scenarios.crowds())


@pytest.fixture(scope="module")
def stopped_run():
    cfg = VisionConfig.model_validate({"stopped_vehicle": {"stationary_s": STATIONARY_S}})
    return run_scenario(scenarios.stopped_vehicles(stationary_s=STATIONARY_S), cfg)


@pytest.fixture(scope="module")
def intrusion_run():
    return run_scenario(scenarios.intrusions())


def assert_recall(matches: dict, minimum: float = 0.9) -> None:
    assert matches, "scenario produced no ground truth"
    found = sum(1 for m in matches.values() if m is not None)
    assert found / len(matches) >= minimum, f"recall {found}/{len(matches)}: missed {[k for k, v in matches.items() if v is None]}"


def assert_geolocation(run, matches: dict, limit_m: float = 10.0, moving: bool = False) -> None:
    """Placed within limit_m: stationary incidents by their final fix, moving ones (intruders)
    by the fix they were reported with, compared with where they entered."""
    for name, hit in matches.items():
        if hit is None:
            continue
        truth = next(i for (k, n), i in run.truth.items() if n == name)
        inc = hit[1].incident if moving else run.get_final(hit[1].incident.id).incident
        err = distance_m(inc.lat, inc.lon, truth.lat, truth.lon)
        assert err <= limit_m, f"{name}: placed {err:.1f} m from the truth"
        assert inc.error_m is not None and inc.error_m > 0


def test_fires_found_fast_and_placed(fire_run):
    """Lane over burning and igniting fires among red roofs, orange tarps and yellow cars:
    every fire reported within 300 ms of showing, placed within 10 m, and no false fires."""
    matches = match_truth(fire_run, "fire")
    assert_recall(matches)
    for name, hit in matches.items():
        if hit is None:
            continue
        truth = next(i for (k, n), i in fire_run.truth.items() if n == name)
        visible_s = max(truth.since_s, truth.first_visible_s)
        assert hit[0] - visible_s <= 0.3, f"{name}: reported {hit[0] - visible_s:.2f} s after first visible"
    assert_geolocation(fire_run, matches)
    assert not false_alerts(fire_run, "fire")


def test_crowds_found_within_a_second(crowd_run):
    """Hovering while crowds gather: each reported within 1 s of reaching the head count."""
    matches = match_truth(crowd_run, "crowd")
    assert_recall(matches)
    for name, hit in matches.items():
        if hit is not None:
            truth = next(i for (k, n), i in crowd_run.truth.items() if n == name)
            assert hit[0] - truth.since_s <= 1.0, f"{name}: {hit[0] - truth.since_s:.2f} s late"
    assert_geolocation(crowd_run, matches)
    assert not false_alerts(crowd_run)


def test_stopped_vehicles_found_within_a_second(stopped_run):
    """Cars halting in lane among moving traffic: reported within 1 s of standing STATIONARY_S."""
    matches = match_truth(stopped_run, "stopped_vehicle")
    assert_recall(matches)
    for name, hit in matches.items():
        if hit is not None:
            truth = next(i for (k, n), i in stopped_run.truth.items() if n == name)
            assert hit[0] - (truth.since_s + STATIONARY_S) <= 1.0
    assert_geolocation(stopped_run, matches)
    assert not false_alerts(stopped_run)


def test_intrusions_found_fast(intrusion_run):
    """People walking into a restricted compound: each reported within 300 ms of entering."""
    matches = match_truth(intrusion_run, "intrusion")
    assert_recall(matches)
    for name, hit in matches.items():
        if hit is not None:
            truth = next(i for (k, n), i in intrusion_run.truth.items() if n == name)
            assert hit[0] - max(truth.since_s, truth.first_visible_s) <= 0.3
    assert_geolocation(intrusion_run, matches, moving=True)
    assert not false_alerts(intrusion_run)


def test_calm_footage_raises_no_alerts():
    """90 s of traffic and walkers under a patrolling drone (15 frames/s): zero alerts, i.e.
    under the budget of 1 per 10 minutes extrapolated."""
    run = run_scenario(scenarios.calm(duration_s=90.0), fps=15.0)
    assert not run.truth
    news = [e for _, e in run.events if e.state.value == "new"]
    assert not news, [f"{e.incident.kind.value}@{e.incident.first_seen_s:.1f}s" for e in news]


def test_a_yellow_car_sliding_into_view_by_a_red_roof_is_no_fire():
    """The patrol's eyes (640x360 at 5 frames/s, 5 m/s) pass a yellow car parked by a red roof.
    It was reported as a fire twice: entering over the frame edge at ~5 s (the band of ground
    just come into view, empty in the previous frame, counted as flicker) and mid-frame at ~14 s
    (its rim, blending with the roof as it moved by fractions of a pixel, swung its colour)."""
    run = run_scenario(scenarios.standing_vehicles(seed=4, n=0), size=(640, 360), fps=5.0, duration_s=16.0)
    assert not run.get_new("fire")
