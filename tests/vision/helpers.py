"""Run a synthetic scenario through the pipeline and compare incidents with ground truth."""
from __future__ import annotations

from dataclasses import dataclass, field

from common.geo import distance_m
from common.values import CameraModel, IncidentEvent, IncidentState
from sim.camera import SyntheticCamera, TruthItem
from sim.camera.scenarios import Scenario
from vision import IncidentPipeline, VisionConfig


@dataclass
class Run:
    events: list[tuple[float, IncidentEvent]] = field(default_factory=list)
    truth: dict[tuple[str, str], TruthItem] = field(default_factory=dict)
    duration_s: float = 0.0

    def get_new(self, kind: str) -> list[tuple[float, IncidentEvent]]:
        return [(t, e) for t, e in self.events if e.state == IncidentState.NEW and e.incident.kind.value == kind]

    def get_final(self, incident_id: str) -> IncidentEvent:
        return [e for _, e in self.events if e.incident.id == incident_id][-1]


def run_scenario(scenario: Scenario, config: VisionConfig | None = None, size=(1280, 720), fps: float = 30.0,
                 duration_s: float | None = None, with_pose: bool = True, with_roads: bool = False) -> Run:
    """with_roads: hand the pipeline the scene's lanes as road zones (as the patrol's eyes do)."""
    camera = CameraModel(size[0], size[1], 82.0)
    cam = SyntheticCamera(scenario.scene, camera)
    pipe = IncidentPipeline((config or VisionConfig()).for_synthetic_camera(), camera=camera, drone_id="d1",
                            restricted_zones=scenario.scene.restricted_zones,
                            road_zones=scenario.scene.road_zones() if with_roads else None)
    run = Run(duration_s=duration_s or scenario.duration_s)
    for i in range(int(round(run.duration_s * fps))):
        t = i / fps
        pose = scenario.flight.pose(scenario.scene, t)
        frame = cam.render(pose, t)
        for item in cam.visible_truth(pose, t):
            run.truth.setdefault((item.kind.value, item.name), item)
        for ev in pipe.process(frame, t, pose if with_pose else None):
            run.events.append((t, ev))
    return run


def match_truth(run: Run, kind: str, radius_m: float = 10.0) -> dict[str, tuple[float, IncidentEvent] | None]:
    """For each true incident of `kind`, the first NEW incident of that kind placed within radius_m."""
    out: dict[str, tuple[float, IncidentEvent] | None] = {}
    news = run.get_new(kind)
    for (k, name), item in run.truth.items():
        if k != kind:
            continue
        hits = [(t, e) for t, e in news if e.incident.lat is not None
                and distance_m(e.incident.lat, e.incident.lon, item.lat, item.lon) <= radius_m]
        out[name] = min(hits, key=lambda h: h[0]) if hits else None
    return out


def false_alerts(run: Run, kind: str | None = None, radius_m: float = 15.0) -> list[IncidentEvent]:
    """NEW incidents with no true incident of the same kind within radius_m."""
    bad = []
    for _, e in run.events:
        if e.state != IncidentState.NEW or (kind and e.incident.kind.value != kind):
            continue
        inc = e.incident
        near = [i for (k, _), i in run.truth.items() if k == inc.kind.value and inc.lat is not None
                and distance_m(inc.lat, inc.lon, i.lat, i.lon) <= radius_m]
        if not near:
            bad.append(e)
    return bad
