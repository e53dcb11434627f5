"""Each drone's eyes: frames + the drone's live Pose -> the vision pipeline ->
`DetectionPublisher` (MQTT `patrol/detections/{drone_id}`), as a remote vision worker would do it.

`DroneEyes` renders the synthetic camera from the live pose at `camera.fps` per scenario second,
only while the drone is airborne over textured ground (see world.py); render + vision run in a
worker thread (OpenCV releases the GIL), so two cores carry three drones.

`VideoEyes` watches the drone's real video instead (`patrol run --video drone01=rtsp://...`):
an RTSP/UDP/HTTP stream, or a recorded file replayed from take-off on the scenario clock. Each
frame it looks at is paired with the drone's newest telemetry pose; a lost stream is reopened.

`WorkerProcessEyes` hands that video to a separate `patrol watch --broker` process, the same
vision worker a drone has on its own machine (`patrol run --vision-workers process`): its
detections reach the dispatcher over MQTT; the run follows its status topic and ends it on stop.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

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


class WorkerProcessEyes:
    """A drone's real video watched by its own vision worker process (runloop/worker.py via
    `patrol watch SOURCE --broker URL --drone-id D --pose mqtt`), as on a separate machine: pose
    from the dispatcher's `drones/{id}/state`, detections to `detections/{id}`, which the
    dispatcher takes like any worker's. The run starts it (a recording at take-off, as the
    in-process eyes replay it; a stream at once), records what its status and detections say,
    names it when it is lost, and ends it on stop (SIGTERM, then SIGKILL after `stop_timeout_s`;
    on Linux the child also dies with the run, so a killed run leaves no orphan)."""

    stop_timeout_s = 15.0  # the worker drains its queued detections for up to 10 s (WorkerSettings)
    status_interval_s = 1.0

    def __init__(self, drone_id: str, vehicle, source: str, broker, vision_config, camera: CameraModel,
                 clock: ScenarioClock, store: EventStore, run_dir: Path, topic_prefix: str = "patrol",
                 worker_broker=None, zones=()):
        """broker: the run's, for following the worker; worker_broker: the worker's own login
        (`drone-<id>` on a `patrol broker-config` broker), default the run's broker settings;
        zones: the scenario's restricted zones, [(lat, lon), ...] each (intrusions)."""
        from dispatch.mqtt import MqttSession
        from dispatch.topics import Topics

        self.drone_id = drone_id
        self.vehicle = vehicle
        self.source = source
        self.broker = worker_broker or broker
        self.clock = clock
        self.store = store
        self.dir = Path(run_dir) / "vision-workers"
        self.topics = Topics(topic_prefix)
        self.vision_config = vision_config.model_copy(update={"camera": vision_config.camera.model_copy(
            update={"width_px": camera.width_px, "height_px": camera.height_px, "hfov_deg": camera.hfov_deg})})
        self.zones = [list(z) for z in zones]
        self.proc: asyncio.subprocess.Process | None = None
        self.status: dict = {}  # the worker's newest patrol.worker-status/1
        self.frames = 0
        self.detections = 0
        self.lost: str | None = None  # why the worker was lost, if it was
        self._started_wall = time.time()
        self._stopping = False
        self.session = MqttSession(broker, client_id=f"patrol-run-watch-{drone_id}",
                                   subscriptions=[(self.topics.worker_status(drone_id), 1),
                                                  (self.topics.detections(drone_id), 1)],
                                   name=f"watch-{drone_id}")

    def command(self, config_path: Path) -> list[str]:
        """The worker's command line: no secret on it (the password goes in its environment)."""
        b = self.broker
        cmd = [sys.executable, "-m", "patrol", "watch", self.source, "--broker", b.url, "--drone-id", self.drone_id,
               "--pose", "mqtt", "--config", str(config_path), "--status-interval", str(self.status_interval_s),
               "--mqtt-version", b.protocol, "--topic-prefix", self.topics.prefix]
        for zone in self.zones:
            cmd += ["--zone", ";".join(f"{lat:.7f},{lon:.7f}" for lat, lon in zone)]
        if b.username:
            cmd += ["--username", b.username]
        if b.ca_file:
            cmd += ["--ca-file", str(b.ca_file)]
        if b.tls_insecure:
            cmd.append("--tls-insecure")
        return cmd

    async def run(self, stop: asyncio.Event) -> None:
        from vision.sources import is_stream

        watching = asyncio.Event()  # outlives `stop` a little: the worker's last status comes as it goes
        watcher = asyncio.create_task(self.session.run(self._on_message, watching), name=f"watch-{self.drone_id}")
        try:
            if not is_stream(self.source):  # a recording replays from take-off
                while not stop.is_set() and not self._airborne():
                    await asyncio.sleep(0.1)
            if stop.is_set():
                return
            await self._start()
            exited = asyncio.create_task(self.proc.wait())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({exited, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if exited.done():
                self._exited(self.proc.returncode)
        finally:
            await self.end()
            for _ in range(20):
                if self.proc is None or self.status.get("state") == "offline":
                    break
                await asyncio.sleep(0.05)
            watching.set()
            await asyncio.gather(watcher, return_exceptions=True)

    def _airborne(self) -> bool:
        s = self.vehicle.state
        return s.pose is not None and s.armed and s.pose.alt_rel_m >= MIN_RENDER_ALT_M

    async def _start(self) -> None:
        import yaml

        from vision.sources import safe_source_name

        self.dir.mkdir(parents=True, exist_ok=True)
        config_path = self.dir / f"{self.drone_id}-vision.yaml"
        config_path.write_text(yaml.safe_dump(self.vision_config.model_dump(mode="json")))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("PATROL_MQTT_PASSWORD", None)
        if self.broker.password is not None:
            env["PATROL_MQTT_PASSWORD"] = self.broker.password.get_secret_value()
        log_path = self.dir / f"{self.drone_id}.log"
        self._started_wall = time.time()
        with log_path.open("ab") as log_file:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command(config_path), stdin=asyncio.subprocess.DEVNULL, stdout=log_file,
                stderr=asyncio.subprocess.STDOUT, env=env, preexec_fn=_die_with_parent())
        self.store.add(self.clock(), "worker_started", f"eyes-{self.drone_id}", pid=self.proc.pid, source=self.source,
                       log=str(log_path))
        print(f"{self.drone_id}: vision worker process {self.proc.pid} watching {safe_source_name(self.source)} "
              f"(log {log_path})", flush=True)

    def live_status(self) -> str:
        """One line for the live table: how this drone's worker is."""
        if self.lost is not None:
            return f"LOST ({self.lost.split(';')[0]})"
        if self.proc is None:
            return "waiting for take-off" if _is_recording(self.source) else "starting"
        st = self.status
        if not st:
            return f"pid {self.proc.pid}, starting"
        if st.get("state") == "offline":
            return f"offline ({st.get('reason')})"
        text = f"online, video {st.get('video')}, pose {st.get('pose')}"
        if st.get("frames_per_s") is not None:
            text += f", {st['frames_per_s']:.1f} fr/s"
        return text

    def _exited(self, code: int) -> None:
        """The worker ended by itself: a recording played to its end (exit 0), else it was lost."""
        if code == 0 and self.status.get("reason") in ("ended", None):
            return
        why = f"exited with code {code}" if code >= 0 else f"killed by signal {-code}"
        self._lose(f"{why}; see {self.dir / (self.drone_id + '.log')}")

    def _lose(self, why: str) -> None:
        if self.lost is not None or self._stopping:
            return
        self.lost = why
        log.error("%s: vision worker lost: %s", self.drone_id, why)
        print(f"{self.drone_id}: vision worker LOST: {why}", flush=True)
        self.store.add(self.clock(), "stage_error", f"vision-worker-{self.drone_id}", error=f"vision worker lost: {why}")

    async def end(self) -> None:
        """Stop the worker (SIGTERM: it drains what it queued and says `stopped`), SIGKILL if it
        does not go within `stop_timeout_s`. Safe to call more than once."""
        self._stopping = True
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        try:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), self.stop_timeout_s)
        except (TimeoutError, asyncio.CancelledError):
            proc.kill()
            await asyncio.shield(proc.wait())
        except ProcessLookupError:
            pass

    async def _on_message(self, message) -> None:
        topic = str(message.topic)
        try:
            payload = json.loads(message.payload)
        except (ValueError, TypeError):
            return
        if topic == self.topics.worker_status(self.drone_id):
            self._on_status(payload)
        elif isinstance(payload, dict) and isinstance(payload.get("incident"), dict):
            inc = payload["incident"]
            self.detections += 1
            self.store.add(self.clock(), "detection", str(inc.get("id")), state=payload.get("state"),
                           kind=inc.get("kind"), lat=inc.get("lat"), lon=inc.get("lon"), error_m=inc.get("error_m"),
                           confidence=inc.get("confidence"), drone_id=self.drone_id)

    def _on_status(self, status: dict) -> None:
        if self.proc is None or (status.get("ts") or 0) < self._started_wall - 1.0:
            return  # a retained status of an earlier worker of this drone
        before, self.status = self.status, status
        self.frames = int(status.get("frames") or 0)
        now = self.clock()
        video, was = status.get("video"), before.get("video")
        if video == "ok" and was != "ok":
            self.store.add(now, "video_opened", f"eyes-{self.drone_id}", source=self.source,
                           live=not _is_recording(self.source), worker_pid=self.proc.pid)
        elif video == "lost" and was != "lost":
            self.store.add(now, "video_lost", f"eyes-{self.drone_id}", source=self.source,
                           error=status.get("last_error"))
        if status.get("state") == "offline" and before.get("state") != "offline":
            reason = status.get("reason")
            if reason == "ended":
                self.store.add(now, "video_ended", f"eyes-{self.drone_id}", source=self.source, frames=self.frames)
            elif reason in ("lost", "failed"):
                self._lose(f"status offline ({reason})" + (f": {status['last_error']}" if status.get("last_error") else ""))


def _is_recording(source: str) -> bool:
    from vision.sources import is_stream

    return not is_stream(source)


def _die_with_parent():
    """For the child, run between fork and exec: SIGTERM when the run's process dies (Linux prctl
    PR_SET_PDEATHSIG), so not even a SIGKILL-ed run leaves a worker behind. libc is loaded here,
    in the parent: after fork only the call itself runs. None where there is no such call."""
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def parse_video_arg(text: str) -> tuple[str, str]:
    """`DRONE=SOURCE` (drone01=rtsp://..., 1=flight.mp4) -> (drone number or id, source)."""
    drone, sep, source = text.partition("=")
    if not sep or not drone.strip() or not source.strip():
        raise ValueError(f"--video takes DRONE=SOURCE (e.g. drone01=rtsp://10.0.0.5:8554/cam), got {text!r}")
    return drone.strip(), source.strip()
