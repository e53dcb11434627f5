"""Named synthetic scenarios with ground truth, and a writer for video + telemetry files.

Each builder returns a `Scenario` (scene, flight, duration). Roads in the default scene run at
east/north = -150, -50, 50, 150 m; the flights keep to the area around the origin.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from common.values import CameraModel

from .actors import CarActor, CrowdActor, FireActor, Mover, PersonActor
from .camera import SyntheticCamera
from .scene import HoverFlight, LaneFlight, PatrolFlight, Scene

_CAR_COLOURS = [(180, 180, 185), (40, 40, 40), (30, 30, 150), (150, 80, 30), (30, 200, 230), (220, 220, 220)]


@dataclass
class Scenario:
    name: str
    scene: Scene
    flight: object
    duration_s: float


def _traffic(scene: Scene, rng: np.random.Generator, n: int, t0: float = 0.0) -> None:
    """Cars driving the two roads nearest the origin (both directions) and people walking fields."""
    roads_e, roads_n = scene.roads
    re = min(roads_e, key=abs)
    rn = min(roads_n, key=abs)
    for i in range(n):
        lane = rng.choice(4)
        start = t0 + rng.uniform(0, 20)
        speed = rng.uniform(7, 12)
        if lane == 0:
            path = ((re + 1.8, -200.0), (re + 1.8, 200.0))
        elif lane == 1:
            path = ((re - 1.8, 200.0), (re - 1.8, -200.0))
        elif lane == 2:
            path = ((-200.0, rn - 1.8), (200.0, rn - 1.8))
        else:
            path = ((200.0, rn + 1.8), (-200.0, rn + 1.8))
        scene.actors.append(CarActor(Mover(path, speed, start_s=start), colour=_CAR_COLOURS[i % len(_CAR_COLOURS)],
                                     name=f"traffic-{i}"))
    for i in range(n // 2):
        a = rng.uniform(0, 2 * math.pi)
        e, nn = rng.uniform(-40, 40, 2)
        path = ((e, nn), (e + 40 * math.sin(a), nn + 40 * math.cos(a)))
        scene.actors.append(PersonActor(Mover(path, rng.uniform(1.0, 1.6), start_s=rng.uniform(0, 10)),
                                        colour=[(40, 40, 160), (200, 200, 200), (30, 30, 30)][i % 3], name=f"walker-{i}"))


def calm(seed: int = 1, duration_s: float = 60.0) -> Scenario:
    """Normal traffic and walkers under a drone patrolling a lawnmower loop: nothing to report."""
    scene = Scene(seed=seed)
    rng = np.random.default_rng(seed)
    _traffic(scene, rng, 10)
    # Traffic keeps coming for the whole run (each car crosses the map once).
    for k in range(1, int(duration_s // 25) + 1):
        _traffic(scene, rng, 4, t0=25.0 * k)
    for i, actor in enumerate(scene.actors):
        actor.name = f"{actor.name}-{i}"
    flight = PatrolFlight(((-60.0, -100.0), (-60.0, 100.0), (-20.0, 100.0), (-20.0, -100.0)), alt_m=60.0, speed_m_s=6.0)
    return Scenario("calm", scene, flight, duration_s)


def fires(seed: int = 2, n: int = 5) -> Scenario:
    """A lane over `n` fires (some already burning, some igniting in view) and colour distractors."""
    scene = Scene(seed=seed)
    rng = np.random.default_rng(seed)
    _traffic(scene, rng, 6)
    for i in range(n):
        e = rng.uniform(-35, 35)
        nn = -60 + i * 30 + rng.uniform(-5, 5)
        ignite = 0.0 if i % 2 == 0 else max(0.0, (nn + 80) / 8.0 - 2.0)
        scene.actors.append(FireActor((e, nn), ignite_s=ignite, name=f"fire-{i}"))
    flight = LaneFlight((0.0, -110.0), (0.0, 110.0), alt_m=60.0, speed_m_s=8.0)
    return Scenario("fires", scene, flight, 24.0)


def crowds(seed: int = 3, n: int = 4) -> Scenario:
    """Hovering at 60 m while `n` crowds gather at staggered times, with passers-by."""
    scene = Scene(seed=seed)
    rng = np.random.default_rng(seed)
    _traffic(scene, rng, 4)
    spots = [(-32.0, 12.0), (30.0, 12.0), (-30.0, -14.0), (32.0, -12.0), (0.0, 0.0)]
    for i in range(n):
        scene.actors.append(CrowdActor(spots[i % len(spots)], n_people=7, start_s=1.0 + 3.0 * i, arrive_every_s=1.0,
                                       seed=seed * 10 + i, name=f"crowd-{i}"))
    return Scenario("crowds", scene, HoverFlight((0.0, 0.0), alt_m=60.0), 30.0)


def _crossroads(seed: int) -> tuple[Scene, np.random.Generator, float, float]:
    """A scene with traffic, its random stream, and the roads nearest the origin (east, north)."""
    scene = Scene(seed=seed)
    rng = np.random.default_rng(seed)
    roads_e, roads_n = scene.roads
    _traffic(scene, rng, 6)
    return scene, rng, min(roads_e, key=abs), min(roads_n, key=abs)


def stopped_vehicles(seed: int = 4, stationary_s: float = 6.0) -> Scenario:
    """Hovering over a crossroads; some cars stop in lane (accidents), others keep driving."""
    scene, rng, re, rn = _crossroads(seed)
    stops = [((re + 1.8, -90.0), (re + 1.8, 200.0), 3.0), ((-150.0, rn - 1.8), (200.0, rn - 1.8), 8.0),
             ((re - 1.8, 80.0), (re - 1.8, -200.0), 11.0), ((100.0, rn + 1.8), (-200.0, rn + 1.8), 12.0)]
    for i, (a, b, stop) in enumerate(stops):
        scene.actors.append(CarActor(Mover((a, b), 9.0, start_s=0.0, stop_at_s=stop), colour=_CAR_COLOURS[i],
                                     name=f"stopper-{i}"))
    centre = (re + 10.0, rn + 5.0)
    return Scenario("stopped_vehicles", scene, HoverFlight(centre, alt_m=60.0), 12.0 + stationary_s + 4.0)


def standing_vehicles(seed: int = 6, n: int = 4) -> Scenario:
    """A patrol lane at 5 m/s over cars that stopped in lane before the drone came (never seen
    moving), with traffic driving past them and parked cars beside the roads."""
    scene, rng, re, rn = _crossroads(seed)
    for i in range(n):
        # Alternately on the north-south road under the lane and across it on the east-west road.
        if i % 2 == 0:
            place, heading = (re + rng.choice([-1.8, 1.8]), -70.0 + 45.0 * i + rng.uniform(-5, 5)), (0.0, 1.0)
        else:
            place, heading = (re + rng.choice([-1, 1]) * rng.uniform(12, 35), rn + rng.choice([-1.8, 1.8])), (1.0, 0.0)
        # Braked to a halt 30 s before the run starts.
        start = (place[0] - heading[0] * 20.0, place[1] - heading[1] * 20.0)
        mover = Mover((start, (place[0] + heading[0] * 100, place[1] + heading[1] * 100)), 9.0, start_s=-40.0,
                      stop_at_s=-40.0 + (20.0 - 9.0 ** 2 / 6.0) / 9.0)
        scene.actors.append(CarActor(mover, colour=_CAR_COLOURS[(i + seed) % len(_CAR_COLOURS)], name=f"standing-{i}"))
    flight = LaneFlight((re + 15.0, -110.0), (re + 15.0, 110.0), alt_m=60.0, speed_m_s=5.0)
    return Scenario("standing_vehicles", scene, flight, flight.duration_s)


def intrusions(seed: int = 5, n: int = 4) -> Scenario:
    """Hovering by a restricted compound; people and a car go in, others walk past outside."""
    scene = Scene(seed=seed)
    rng = np.random.default_rng(seed)
    _traffic(scene, rng, 4)
    scene.add_zone_en([(5.0, -15.0), (35.0, -15.0), (35.0, 15.0), (5.0, 15.0)])
    for i in range(n):
        y = -10.0 + 20.0 * i / max(1, n - 1)
        scene.actors.append(PersonActor(Mover(((-25.0, y), (25.0, y + 3)), 1.4, start_s=2.0 + 3.0 * i),
                                        colour=(40, 40, 160), name=f"intruder-{i}"))
    for i in range(2):
        y = -22.0 + 44.0 * i
        scene.actors.append(PersonActor(Mover(((-30.0, y), (40.0, y)), 1.3, start_s=1.0), colour=(200, 200, 200),
                                        name=f"passer-{i}"))
    return Scenario("intrusions", scene, HoverFlight((0.0, 0.0), alt_m=60.0), 34.0)


SCENARIOS = {"calm": calm, "fires": fires, "crowds": crowds, "stopped_vehicles": stopped_vehicles,
             "standing_vehicles": standing_vehicles, "intrusions": intrusions}


def write_synthetic_video(scenario: Scenario, out_dir: str | Path, camera: CameraModel = CameraModel(1280, 720, 82.0),
                          fps: float = 30.0, duration_s: float | None = None, seed: int = 0) -> dict[str, Path]:
    """Render a scenario to `<name>.mp4` (mp4v), `<name>.poses.jsonl` and `<name>.truth.jsonl`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cam = SyntheticCamera(scenario.scene, camera, seed=seed)
    video = out / f"{scenario.name}.mp4"
    poses_path = out / f"{scenario.name}.poses.jsonl"
    truth_path = out / f"{scenario.name}.truth.jsonl"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), fps, (camera.width_px, camera.height_px))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {video}")
    seen: set[tuple[str, str]] = set()
    n = int(round((duration_s or scenario.duration_s) * fps))
    with poses_path.open("w") as poses, truth_path.open("w") as truth:
        for i in range(n):
            t = i / fps
            pose = scenario.flight.pose(scenario.scene, t)
            writer.write(cam.render(pose, t))
            poses.write(json.dumps({"time_s": t, "lat": pose.lat, "lon": pose.lon, "alt_rel_m": pose.alt_rel_m,
                                    "alt_msl_m": pose.alt_msl_m, "yaw_deg": pose.yaw_deg, "heading_deg": pose.heading_deg,
                                    "groundspeed_m_s": pose.groundspeed_m_s}) + "\n")
            for item in cam.visible_truth(pose, t):
                if (item.kind.value, item.name) not in seen:
                    seen.add((item.kind.value, item.name))
                    truth.write(json.dumps({"kind": item.kind.value, "name": item.name, "lat": item.lat, "lon": item.lon,
                                            "since_s": item.since_s, "first_visible_s": item.first_visible_s}) + "\n")
    writer.release()
    return {"video": video, "telemetry": poses_path, "truth": truth_path}
