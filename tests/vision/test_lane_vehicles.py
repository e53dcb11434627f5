"""Vehicles standing on a traffic lane, found by appearance + place on the ground: a car that
stopped before any drone came by is reported by the drone that later flies over it, as the
patrol's eyes see it (640x360 at 5 frames/s, 60 m, 5 m/s)."""
from __future__ import annotations

import pytest

from common.geo import distance_m
from common.values import IncidentState
from sim.camera import scenarios
from vision import IncidentPipeline, VisionConfig, VisionError

from .helpers import false_alerts, match_truth, run_scenario

LOOP = {"size": (640, 360), "fps": 5.0}
CONFIG = VisionConfig.model_validate({"stopped_vehicle": {"stationary_s": 6.0}})


@pytest.fixture(scope="module")
def standing_runs():
    return [run_scenario(scenarios.standing_vehicles(seed=seed), CONFIG, with_roads=True, **LOOP) for seed in (6, 7)]


def test_cars_standing_before_the_drone_came_are_reported(standing_runs):
    """Every standing car in view is reported once it has been watched for stationary_s, placed
    within 10 m; nothing else (traffic, parked cars, markings) is reported."""
    for run in standing_runs:
        matches = match_truth(run, "stopped_vehicle")
        assert len(matches) >= 3, "the lane should pass over at least three of the standing cars"
        missed = [name for name, hit in matches.items() if hit is None]
        assert not missed, f"missed {missed}"
        for name, (t_s, ev) in matches.items():
            truth = next(i for (k, n), i in run.truth.items() if n == name)
            assert t_s - truth.first_visible_s >= 6.0 - 0.5, f"{name} reported before it was watched for 6 s"
            final = run.get_final(ev.incident.id).incident
            assert distance_m(final.lat, final.lon, truth.lat, truth.lon) <= 10.0
        assert not false_alerts(run), [e.incident for e in false_alerts(run)]


def test_without_road_zones_standing_cars_are_not_guessed(standing_runs):
    """No lane map, no appearance check: a car never seen moving is not reported (motion alone
    cannot tell it from a parked one)."""
    run = run_scenario(scenarios.standing_vehicles(seed=6), CONFIG, with_roads=False, **LOOP)
    assert not run.get_new("stopped_vehicle")


def test_calm_patrol_over_lanes_with_traffic_raises_nothing():
    """A minute of patrol over roads with traffic and parked cars (some yellow) beside the lanes:
    no alert of any kind."""
    run = run_scenario(scenarios.calm(seed=22, duration_s=60.0), CONFIG, with_roads=True, **LOOP)
    assert not [e for _, e in run.events if e.state == IncidentState.NEW]


def test_road_zone_with_too_few_vertices_is_refused():
    """A road zone is a polygon: two vertices give a VisionError naming the zone."""
    with pytest.raises(VisionError, match="road zone 0 has 2 vertices"):
        IncidentPipeline(VisionConfig(), road_zones=[[(32.0, 119.0), (32.0, 119.001)]])
