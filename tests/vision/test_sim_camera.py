"""The synthetic camera: frames, ground truth, and agreement with vision's geolocation."""
from __future__ import annotations

import numpy as np
import pytest

from common.geo import distance_m
from common.values import CameraModel, IncidentKind
from sim.camera import CarActor, FireActor, HoverFlight, LaneFlight, Mover, PatrolFlight, Scene, SyntheticCamera
from vision.config import CameraConfig, GeolocationConfig
from vision.geolocate import pixel_to_latlon


@pytest.mark.parametrize("pitch", [-90.0, -60.0])
def test_rendered_point_geolocates_back(pitch):
    """A ground point drawn by the sim at pixel (u, v) is placed back within 0.5 m by vision
    (no shake, no GPS bias), nadir and oblique."""
    scene = Scene(seed=3)
    cam = SyntheticCamera(scene, CameraModel(1280, 720, 82.0), gimbal_pitch_deg=pitch, shake_deg=0.0, gps_bias_m=0.0)
    pose = HoverFlight((10.0, -5.0), alt_m=60.0, yaw_deg=37.0).pose(scene, 3.0)
    h = cam.world_to_image(pose, 3.0)
    cam_cfg = CameraConfig(width_px=1280, height_px=720, hfov_deg=82.0, gimbal_pitch_deg=pitch)
    for e, n in [(12.0, -3.0), (30.0, 10.0), (-5.0, -20.0)]:
        p = h @ np.array([e, n, 1.0])
        u, v = p[0] / p[2], p[1] / p[2]
        if not (0 <= u < 1280 and 0 <= v < 720):
            continue
        lat, lon, err = pixel_to_latlon(pose, u, v, cam.camera, cam_cfg, GeolocationConfig())
        assert distance_m(lat, lon, *scene.latlon(e, n)) < 0.5
        assert err > 0


def test_frames_and_truth_follow_the_script():
    """Frames are BGR of the camera size; a fire is in the truth only once ignited and in view,
    and keeps its first-visible time; a car that stops is a stopped vehicle from its halt."""
    scene = Scene(seed=4, actors=[FireActor((0.0, 0.0), ignite_s=2.0, name="f"),
                                  CarActor(Mover(((-50.0, 5.0), (50.0, 5.0)), 10.0, stop_at_s=3.0), name="c")])
    cam = SyntheticCamera(scene, CameraModel(640, 360, 82.0))
    flight = HoverFlight((0.0, 0.0), alt_m=60.0)
    frame = cam.render(flight.pose(scene, 0.0), 0.0)
    assert frame.shape == (360, 640, 3) and frame.dtype == np.uint8
    assert cam.visible_truth(flight.pose(scene, 1.0), 1.0) == []
    items = {i.name: i for i in cam.visible_truth(flight.pose(scene, 2.5), 2.5)}
    assert items["f"].kind == IncidentKind.FIRE and items["f"].first_visible_s == 2.5
    later = {i.name: i for i in cam.visible_truth(flight.pose(scene, 9.0), 9.0)}
    assert later["f"].first_visible_s == 2.5
    assert later["c"].kind == IncidentKind.STOPPED_VEHICLE and later["c"].since_s == pytest.approx(3.0 + 10.0 / 3.0)


def test_fire_flickers_and_changes_the_frame():
    """Consecutive frames of a burning fire differ where it burns (flicker), not elsewhere much."""
    scene = Scene(seed=5, actors=[FireActor((0.0, 0.0), ignite_s=0.0)])
    cam = SyntheticCamera(scene, CameraModel(640, 360, 82.0), shake_deg=0.0, gps_bias_m=0.0, noise_sigma=0.0)
    pose = LaneFlight((0.0, 0.0), (0.0, 1.0), alt_m=60.0, speed_m_s=0.0).pose(scene, 0.0)
    a, b = cam.render(pose, 1.0), cam.render(pose, 1.0 + 1 / 30)
    diff = np.abs(a.astype(int) - b.astype(int)).sum(2)
    assert diff[170:190, 310:330].mean() > 5 * max(diff[:100, :100].mean(), 0.1)


def test_patrol_flight_turns_gradually():
    """A patrol loop turns in place at the yaw rate instead of snapping round."""
    scene = Scene(seed=6)
    flight = PatrolFlight(((0.0, 0.0), (0.0, 60.0), (30.0, 60.0)), speed_m_s=6.0, turn_rate_deg_s=30.0)
    yaws = [flight.pose(scene, t / 10).yaw_deg for t in range(0, 200)]
    steps = [abs((b - a + 180) % 360 - 180) for a, b in zip(yaws, yaws[1:])]
    assert max(steps) <= 3.0 + 1e-6


def test_geolocate_doctests():
    """The docstring examples in vision.geolocate hold."""
    import doctest

    import vision.geolocate

    failed, attempted = doctest.testmod(vision.geolocate)
    assert attempted > 0 and failed == 0
