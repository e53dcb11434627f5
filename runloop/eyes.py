"""Each drone's eyes: the synthetic camera rendered from the drone's live Pose -> the vision
pipeline -> `DetectionPublisher` (MQTT `patrol/detections/{drone_id}`), as a remote vision
worker would do it. Frames are rendered at `camera.fps` per scenario second, only while the
drone is airborne over textured ground (see world.py); render + vision run in a worker thread
(OpenCV releases the GIL), so two cores carry three drones.

A real stream plugs in here instead of the synthetic camera (vision.sources) — not wired yet.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from common.values import CameraModel, IncidentEvent, Pose
from runloop.clock import ScenarioClock
from runloop.eventstore import EventStore
from runloop.world import RENDER_MARGIN_M, World

log = logging.getLogger(__name__)

MIN_RENDER_ALT_M = 10.0


class DroneEyes:
    def __init__(self, drone_id: str, vehicle, world: World, clock: ScenarioClock, store: EventStore,
                 publisher, camera: CameraModel, fps: float, vision_config, registry, cell_lookup=None,
                 seed: int = 0, sim_clock=None):
        from vision import IncidentPipeline

        self.drone_id = drone_id
        self.vehicle = vehicle
        self.world = world
        self.clock = clock
        self.store = store
        self.publisher = publisher
        self.camera = camera
        self.period_s = 1.0 / fps
        # The map vision works against: the scenario's restricted zones (intrusions) and the
        # traffic lanes of the scene in view (a car standing on one is found by appearance; set
        # per frame in _look, since scenes may overlap and each lays out its own roads).
        self.pipeline = IncidentPipeline(vision_config, camera=camera, drone_id=drone_id, cell_lookup=cell_lookup,
                                         registry=registry, restricted_zones=world.restricted_zones())
        self._roads_of = None
        self._cameras: dict[int, object] = {}
        self._seed = seed
        # With the built-in simulator, vehicle time stands still while a frame is looked at, so
        # a busy CPU slows the run instead of making vision skip frames (what it sees stays
        # the same at any speedup).
        self.sim_clock = sim_clock
        self.frames = 0
        self.detections = 0
        # Detections leave through a queue, in order: a broker outage delays them but never
        # stops the camera and vision (the publisher retries until the broker is back).
        self._outbox: asyncio.Queue[tuple[IncidentEvent, float]] = asyncio.Queue()
        self.seen_truth: set[str] = set()

    def _camera_for(self, scene):
        from sim.camera import SyntheticCamera

        cam = self._cameras.get(id(scene))
        if cam is None:
            cam = SyntheticCamera(scene, self.camera, seed=self._seed)
            self._cameras[id(scene)] = cam
        return cam

    def _look(self, pose: Pose, t_s: float, scene):
        cam = self._camera_for(scene)
        if self._roads_of is not scene:
            self.pipeline.set_road_zones(scene.road_zones())
            self._roads_of = scene
        frame = cam.render(pose, t_s)
        truth = cam.visible_truth(pose, t_s)
        events = self.pipeline.process(frame, t_s, pose)
        return events, truth

    async def run(self, stop: asyncio.Event) -> None:
        sender = asyncio.create_task(self._send(stop), name=f"eyes-send-{self.drone_id}")
        try:
            await self._watch(stop)
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def _watch(self, stop: asyncio.Event) -> None:
        next_t = self.clock()
        while not stop.is_set():
            now = self.clock()
            if now < next_t:
                await asyncio.sleep(max(0.002, self.clock.wall_s(next_t - now)))
                continue
            next_t = max(next_t + self.period_s, now)
            state = self.vehicle.state
            pose = state.pose
            if pose is None or not state.armed or pose.alt_rel_m < MIN_RENDER_ALT_M:
                continue
            scene = self.world.scene_at(pose.lat, pose.lon, margin_m=RENDER_MARGIN_M)
            if scene is None:
                continue
            # The pipeline aligns frames and poses by time: both on the scenario clock.
            pose = replace(pose, time_s=now, drone_id=self.drone_id)
            if self.sim_clock is not None:
                self.sim_clock.pause()
            try:
                events, truth = await asyncio.to_thread(self._look, pose, now, scene)
            finally:
                if self.sim_clock is not None:
                    self.sim_clock.resume()
            self.frames += 1
            for item in truth:
                if item.name not in self.seen_truth:
                    self.seen_truth.add(item.name)
                    self.store.add(now, "truth_in_view", item.name, drone_id=self.drone_id, kind=str(item.kind))
            for ev in events:
                inc = ev.incident
                self.detections += 1
                self.store.add(now, "detection", inc.id, state=str(ev.state), kind=str(inc.kind), lat=inc.lat,
                               lon=inc.lon, error_m=inc.error_m, confidence=inc.confidence, drone_id=self.drone_id)
                self._outbox.put_nowait((ev, now))

    async def _send(self, stop: asyncio.Event) -> None:
        while True:
            ev, t_s = await self._outbox.get()
            while True:
                try:
                    await self.publisher.publish(ev, timeout_s=30.0)
                    break
                except Exception as exc:  # DispatchError: not delivered in 30 s; keep it, say so, retry
                    log.error("%s: detection %s not delivered yet: %s", self.drone_id, ev.incident.id, exc)
                    self.store.add(self.clock(), "publish_retry", f"eyes-{self.drone_id}",
                                   incident_id=ev.incident.id, error=str(exc))
                    if stop.is_set():
                        self.store.add(self.clock(), "stage_error", f"eyes-{self.drone_id}",
                                       error=f"detection {ev.incident.id} never delivered: {exc}")
                        return
