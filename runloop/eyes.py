"""Each drone's eyes: frames + the drone's live Pose -> the vision pipeline ->
`DetectionPublisher` (MQTT `patrol/detections/{drone_id}`), as a remote vision worker would do it.

`DroneEyes` renders the synthetic camera from the live pose at `camera.fps` per scenario second,
only while the drone is airborne over textured ground (see world.py); render + vision run in a
worker thread (OpenCV releases the GIL), so two cores carry three drones.

`VideoEyes` watches the drone's real video instead (`patrol run --video drone01=rtsp://...`):
an RTSP/UDP/HTTP stream, or a recorded file replayed from take-off on the scenario clock. Each
frame it looks at is paired with the drone's newest telemetry pose; a lost stream is reopened.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import replace

from common.values import CameraModel, IncidentEvent, Pose
from runloop.clock import ScenarioClock
from runloop.eventstore import EventStore
from runloop.world import RENDER_MARGIN_M, World

log = logging.getLogger(__name__)

MIN_RENDER_ALT_M = 10.0
REOPEN_WAIT_S = 5.0  # wall seconds between attempts to reopen a lost video stream


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
        self.pipeline = IncidentPipeline(vision_config.for_synthetic_camera(), camera=camera, drone_id=drone_id, cell_lookup=cell_lookup,
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

    async def _frame_times(self, stop: asyncio.Event):
        """Scenario times `camera.fps` apart, each with the drone's pose when it is airborne
        (armed, above MIN_RENDER_ALT_M), else None."""
        next_t = self.clock()
        while not stop.is_set():
            now = self.clock()
            if now < next_t:
                await asyncio.sleep(max(0.002, self.clock.wall_s(next_t - now)))
                continue
            next_t = max(next_t + self.period_s, now)
            state = self.vehicle.state
            pose = state.pose
            airborne = pose is not None and state.armed and pose.alt_rel_m >= MIN_RENDER_ALT_M
            yield now, (pose if airborne else None)

    async def _watch(self, stop: asyncio.Event) -> None:
        async for now, pose in self._frame_times(stop):
            if pose is None:
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
            self._emit(events, now)

    def _emit(self, events: list[IncidentEvent], now: float) -> None:
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


class VideoFeed:
    """A drone's video read on its own thread, keeping only the newest frame: vision looks at
    `camera.fps` frames per scenario second and never works through a backlog. A live stream
    is read as it comes; a recorded file is released frame by frame on the scenario clock from
    `open()` (its stream time = scenario seconds since take-off)."""

    def __init__(self, spec: str, clock: ScenarioClock, stall_timeout_s: float = 5.0):
        from vision.sources import StreamSource, is_stream, open_source

        self.spec = spec
        self.clock = clock
        self.live = is_stream(spec)
        # VisionError names what is wrong with it
        self.source = StreamSource(spec, stall_timeout_s=stall_timeout_s) if self.live else open_source(spec)
        self.error: str | None = None
        self.ended = False
        self._latest = None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._t0 = clock()
        self._thread = threading.Thread(target=self._read, name=f"video {spec}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        frames = iter(self.source)
        try:
            for frame in frames:
                if self._closed.is_set():
                    return
                if not self.live:  # a recording: wait for its moment on the scenario clock
                    while not self._closed.is_set() and self.clock() < self._t0 + frame.t_s:
                        time.sleep(min(0.05, max(0.001, self.clock.wall_s(self._t0 + frame.t_s - self.clock()))))
                with self._lock:
                    self._latest = frame
            self.ended = True
        except Exception as exc:  # VisionError: lost stream, corrupt tail; frames already seen stand
            self.error = str(exc)
        finally:
            close = getattr(frames, "close", None)
            if close:
                close()  # releases the capture

    def latest(self):
        with self._lock:
            return self._latest

    def close(self) -> None:
        self._closed.set()


class VideoEyes(DroneEyes):
    """The drone's own video (stream or recording) instead of the synthetic camera."""

    stall_timeout_s = 5.0  # a stream with no frame this long is lost
    reopen_wait_s = REOPEN_WAIT_S

    def __init__(self, drone_id: str, vehicle, source: str, *args, **kwargs):
        super().__init__(drone_id, vehicle, *args, **kwargs)
        self.source = source
        self.sim_clock = None  # the vehicles do not wait for a real camera

    async def _watch(self, stop: asyncio.Event) -> None:
        from vision import VisionError
        from vision.sources import is_stream

        feed: VideoFeed | None = None
        reopen_at = 0.0
        outage_logged = False
        last_index = -1
        try:
            async for now, pose in self._frame_times(stop):
                airborne = pose is not None
                if feed is None:
                    if time.monotonic() < reopen_at or (not airborne and not is_stream(self.source)):
                        continue  # a recording replays from take-off
                    try:
                        feed = await asyncio.to_thread(VideoFeed, self.source, self.clock, self.stall_timeout_s)
                    except VisionError as exc:
                        if not is_stream(self.source):  # a file that will not open will not get better
                            self.store.add(now, "stage_error", f"eyes-{self.drone_id}", error=f"video: {exc}")
                            return
                        if not outage_logged:
                            log.warning("%s: video %s: %s (retrying every %.0f s)", self.drone_id, self.source, exc,
                                        self.reopen_wait_s)
                            self.store.add(now, "video_lost", f"eyes-{self.drone_id}", source=self.source,
                                           error=str(exc))
                            outage_logged = True
                        reopen_at = time.monotonic() + self.reopen_wait_s
                        continue
                    outage_logged = False
                    last_index = -1
                    self.store.add(now, "video_opened", f"eyes-{self.drone_id}", source=self.source, live=feed.live)
                if feed.error or feed.ended:
                    feed.close()
                    if feed.ended:
                        self.store.add(now, "video_ended", f"eyes-{self.drone_id}", source=self.source,
                                       frames=self.frames)
                        return  # a recording played to its end (a stream does not end)
                    log.warning("%s: video %s: %s", self.drone_id, self.source, feed.error)
                    self.store.add(now, "video_lost", f"eyes-{self.drone_id}", source=self.source, error=feed.error)
                    if not feed.live:  # a corrupt recording: what it showed is kept, the rest is unreadable
                        self.store.add(now, "stage_error", f"eyes-{self.drone_id}", error=f"video: {feed.error}")
                        return
                    feed, outage_logged, reopen_at = None, True, time.monotonic() + self.reopen_wait_s
                    continue
                frame = feed.latest()
                if frame is None or frame.index == last_index or not airborne:
                    continue
                last_index = frame.index
                # The frame is as old as the newest telemetry: both stamped now on the scenario clock.
                pose = replace(pose, time_s=now, drone_id=self.drone_id)
                events = await asyncio.to_thread(self.pipeline.process, frame.image, now, pose)
                self.frames += 1
                self._emit(events, now)
        finally:
            if feed is not None:
                feed.close()


def parse_video_arg(text: str) -> tuple[str, str]:
    """`DRONE=SOURCE` (drone01=rtsp://..., 1=flight.mp4) -> (drone number or id, source)."""
    drone, sep, source = text.partition("=")
    if not sep or not drone.strip() or not source.strip():
        raise ValueError(f"--video takes DRONE=SOURCE (e.g. drone01=rtsp://10.0.0.5:8554/cam), got {text!r}")
    return drone.strip(), source.strip()
