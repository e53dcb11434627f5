"""A drone's vision worker as a service: its video + its live pose -> the vision pipeline ->
`patrol.detection/1` on `{prefix}/detections/{drone_id}`, health on a retained status topic.

    patrol watch rtsp://10.0.0.5:8554/cam --broker mqtts://drone-D1:PW@broker:8883 --ca-file ca.crt \\
                 --drone-id D1 --pose mavlink:udpin:0.0.0.0:14551

It runs where the GPU or spare cores are, one per drone (docs/deploy.md). What it guarantees:

- **Live pose** from the drone's own MAVLink stream (`MavlinkPoseFeed`: GLOBAL_POSITION_INT +
  ATTITUDE) or from the controller's retained `{prefix}/drones/{id}/state` (`StatePoseFeed`).
  Each frame is paired with the newest pose; one older than `max_pose_age_s` is not used (the
  incident is then reported without a position rather than at a stale one).
- **Video**: the newest frame at `fps` frames per second, never a backlog (runloop.eyes.VideoFeed);
  a lost stream is reopened every `reopen_wait_s`; a recording is played at its own pace and the
  worker ends with it (status `ended`).
- **Nothing already detected is lost to a broker outage**: detections wait in a bounded
  `DetectionOutbox` (an update replaces the queued update of the same incident); when it is full
  the oldest update goes first, and every dropped message is logged and counted in the status.
- **Health**: `patrol.worker-status/1` retained on `{prefix}/workers/{drone_id}/status` every
  `status_interval_s`, with a Last Will (`offline`, `lost`) so a dead worker shows as offline.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, replace

from common.values import IncidentEvent, IncidentState, Pose
from vision.sources import safe_source_name

log = logging.getLogger(__name__)

MAX_POSE_AGE_S = 2.0
STATE_POSE_AGE_S = 5.0  # the controller's drone state comes at ~1 Hz: allow a few missed ones
MAVLINK_SILENCE_S = 5.0  # no MAVLink message this long: the link is reopened
MIN_PLACING_ALT_M = 5.0  # below this (on the ground, taking off) the camera cannot place what it sees


class DetectionOutbox:
    """Detections waiting for the broker, in order, at most `max_events` of them.

    An UPDATE replaces a queued UPDATE of the same incident (only the newest state matters);
    when full, the oldest UPDATE is dropped, else the oldest message. `take()` hands out the head
    and keeps it as in flight until `done()` (sent) or `retry()` (back at the head).

    >>> from common.values import Incident, IncidentKind
    >>> def ev(state, i): return IncidentEvent(state, Incident(id=i, kind=IncidentKind.FIRE, confidence=0.9,
    ...                                                         first_seen_s=0, last_seen_s=0))
    >>> box = DetectionOutbox(max_events=2)
    >>> box.put(ev(IncidentState.NEW, "a")), box.put(ev(IncidentState.UPDATE, "a")), box.put(ev(IncidentState.UPDATE, "a"))
    ([], [], [])
    >>> [d.incident.id + " " + d.state.value for d in box.put(ev(IncidentState.NEW, "b"))]
    ['a update']
    >>> len(box), box.dropped
    (2, 1)
    """

    def __init__(self, max_events: int = 1000):
        if max_events < 1:
            raise ValueError("the detection outbox needs room for at least one message")
        self.max_events = max_events
        self.dropped = 0
        self._queue: deque[IncidentEvent] = deque()
        self._in_flight: IncidentEvent | None = None
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queue) + (self._in_flight is not None)

    def put(self, event: IncidentEvent) -> list[IncidentEvent]:
        """Queue one detection; returns what had to be dropped to make room (already logged)."""
        if event.state == IncidentState.UPDATE:
            for i, queued in enumerate(self._queue):
                if queued.state == IncidentState.UPDATE and queued.incident.id == event.incident.id:
                    self._queue[i] = event
                    return []
        dropped = []
        while len(self) >= self.max_events and self._queue:
            victim = next((q for q in self._queue if q.state == IncidentState.UPDATE), self._queue[0])
            self._queue.remove(victim)
            dropped.append(victim)
            self.dropped += 1
            log.error("detection outbox full (%d): dropped %s %s of %s", self.max_events, victim.state.value,
                      victim.incident.id, victim.incident.drone_id)
        self._queue.append(event)
        self._ready.set()
        return dropped

    async def take(self) -> IncidentEvent:
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        self._in_flight = self._queue.popleft()
        return self._in_flight

    def done(self) -> None:
        self._in_flight = None

    def retry(self) -> None:
        if self._in_flight is not None:
            self._queue.appendleft(self._in_flight)
            self._in_flight = None


# ---------------------------------------------------------------------------------- pose feeds
class PoseFeed:
    """The drone's newest pose and when it came (monotonic), filled by a stream."""

    name = "none"
    max_age_s = MAX_POSE_AGE_S

    def __init__(self, drone_id: str):
        self.drone_id = drone_id
        self._pose: Pose | None = None
        self._at = 0.0
        self._lock = threading.Lock()

    def set(self, pose: Pose) -> None:
        with self._lock:
            self._pose, self._at = pose, time.monotonic()

    def latest(self) -> Pose | None:
        """The newest pose if it is fresh enough to place what the camera sees now, else None."""
        with self._lock:
            if self._pose is None or time.monotonic() - self._at > self.max_age_s:
                return None
            return self._pose

    @property
    def health(self) -> str:
        with self._lock:
            if self._pose is None:
                return "none"
            return "ok" if time.monotonic() - self._at <= self.max_age_s else "stale"

    async def run(self, stop: asyncio.Event) -> None:  # a feed filled from outside has nothing to run
        await stop.wait()


class StatePoseFeed(PoseFeed):
    """Pose from the controller's retained `patrol.drone-state/1` (≈1 Hz; no attitude: the
    gimbal is stabilised, so roll and pitch are taken as level)."""

    name = "mqtt"
    max_age_s = STATE_POSE_AGE_S

    def on_state(self, payload: bytes, topic: str) -> None:
        from dispatch.errors import DispatchError
        from dispatch.schemas import DroneStateMessage, parse

        try:
            msg = parse(DroneStateMessage, payload, topic)
        except DispatchError as exc:
            log.warning("%s: drone state ignored: %s", self.drone_id, exc)
            return
        if msg.drone_id != self.drone_id:
            log.warning("%s: drone state on %s names drone %r; ignored", self.drone_id, topic, msg.drone_id)
            return
        self.set(Pose(time_s=msg.ts, lat=msg.lat, lon=msg.lon, alt_rel_m=msg.alt_rel_m, alt_msl_m=msg.alt_rel_m,
                      yaw_deg=msg.heading_deg, heading_deg=msg.heading_deg, groundspeed_m_s=msg.groundspeed_m_s,
                      drone_id=self.drone_id))


class MavlinkPoseFeed(PoseFeed):
    """Pose from the drone's MAVLink stream (pymavlink URL: udpin:0.0.0.0:14551, tcp:HOST:PORT,
    /dev/ttyUSB0,921600), read on its own thread; reopened after `MAVLINK_SILENCE_S` of silence.
    If no position comes after the first heartbeat, asks the autopilot for its position and
    attitude streams (REQUEST_DATA_STREAM, as a GCS does)."""

    name = "mavlink"

    def __init__(self, drone_id: str, url: str, sysid: int | None = None):
        super().__init__(drone_id)
        self.url = url
        self.sysid = sysid  # only this vehicle's messages on a shared link (None: the first one heard)
        self.error: str | None = None
        self._closed = threading.Event()

    async def run(self, stop: asyncio.Event) -> None:
        thread = threading.Thread(target=self._read, name=f"mavlink {self.url}", daemon=True)
        thread.start()
        try:
            await stop.wait()
        finally:
            self._closed.set()
            await asyncio.to_thread(thread.join, 3.0)

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                self._read_link()
            except Exception as exc:  # pymavlink raises OSError, SerialException, ...: reopen
                if self.error != str(exc):
                    log.warning("%s: MAVLink %s: %s (reopening)", self.drone_id, self.url, exc)
                self.error = str(exc)
            self._closed.wait(1.0)

    def _read_link(self) -> None:
        import math

        from pymavlink import mavutil

        from vision.telemetry import pose_from_mavlink

        link = mavutil.mavlink_connection(self.url, source_system=255, source_component=191, autoreconnect=True,
                                          dialect="ardupilotmega")
        try:
            roll = pitch = 0.0
            heard = last_msg = time.monotonic()
            asked = False
            target = self.sysid
            while not self._closed.is_set():
                msg = link.recv_match(type=["GLOBAL_POSITION_INT", "ATTITUDE", "HEARTBEAT"], blocking=True, timeout=0.5)
                now = time.monotonic()
                if msg is None:
                    if now - last_msg > MAVLINK_SILENCE_S:
                        raise OSError(f"no MAVLink message for {MAVLINK_SILENCE_S:.0f} s")
                    continue
                last_msg = now
                src = msg.get_srcSystem()
                kind = msg.get_type()
                if kind == "HEARTBEAT":
                    if target is None and msg.type != mavutil.mavlink.MAV_TYPE_GCS and src != 255:
                        target = src
                    if src == target and not asked and now - heard > 2.0 and self.health == "none":
                        # heard the vehicle for 2 s without a position: ask for the streams
                        for stream in (mavutil.mavlink.MAV_DATA_STREAM_POSITION, mavutil.mavlink.MAV_DATA_STREAM_EXTRA1):
                            link.mav.request_data_stream_send(target, 0, stream, 5, 1)
                        asked = True
                    continue
                if target is not None and src != target:
                    continue
                if kind == "ATTITUDE":
                    roll, pitch = math.degrees(msg.roll), math.degrees(msg.pitch)
                else:
                    self.set(pose_from_mavlink(msg, roll, pitch, time.time(), drone_id=self.drone_id))
                    self.error = None
        finally:
            link.close()


def parse_pose_arg(text: str, drone_id: str) -> PoseFeed:
    """`--pose mavlink:URL` or `--pose mqtt` -> a PoseFeed; ValueError naming what is wrong."""
    if text == "mqtt":
        return StatePoseFeed(drone_id)
    kind, sep, url = text.partition(":")
    if kind == "mavlink" and sep and url:
        return MavlinkPoseFeed(drone_id, url)
    if text == "none":
        return PoseFeed(drone_id)
    raise ValueError(f"--pose {text!r}: use mavlink:URL (e.g. mavlink:udpin:0.0.0.0:14551, mavlink:tcp:HOST:5760), "
                     "mqtt (the controller's patrol/drones/ID/state) or none")


# ---------------------------------------------------------------------------------- the worker
@dataclass(frozen=True, slots=True)
class WorkerSettings:
    fps: float = 5.0  # frames looked at per second
    outbox_max: int = 1000
    status_interval_s: float = 5.0
    reopen_wait_s: float = 5.0  # between attempts to reopen a lost stream
    stall_timeout_s: float = 5.0  # a stream with no frame this long is lost
    drain_timeout_s: float = 10.0  # at the end, how long queued detections may wait for the broker
    topic_prefix: str = "patrol"


class VisionWorker:
    def __init__(self, source: str, broker, drone_id: str, pose_feed: PoseFeed, vision_config,
                 settings: WorkerSettings = WorkerSettings(), zones=(), progress=None):
        from dispatch.mqtt import LastWill, MqttSession
        from dispatch.schemas import WorkerStatusMessage, dump
        from dispatch.topics import Topics, check_id
        from vision import IncidentPipeline, IncidentRegistry

        self.drone_id = check_id(drone_id, "--drone-id")
        self.source = source
        self.pose_feed = pose_feed
        self.settings = settings
        self.progress = progress
        self.topics = t = Topics(settings.topic_prefix)
        # Incident ids stay unique across restarts of the worker: the controller takes an id it
        # has seen before for that (maybe closed) incident.
        registry = IncidentRegistry(vision_config.incidents, id_prefix=f"{drone_id}-{int(time.time()):x}")
        self.pipeline = IncidentPipeline(vision_config, camera=vision_config.camera.model(), drone_id=drone_id,
                                         restricted_zones=list(zones), registry=registry)
        self.outbox = DetectionOutbox(settings.outbox_max)
        self.frames = 0
        self.detections = 0
        self.published = 0
        self.video_reopens = 0
        self.video_state = "opening"
        self.last_error: str | None = None
        self.outcome = "stopped"
        self._fps_window: deque[float] = deque(maxlen=50)
        lost = dump(WorkerStatusMessage(state="offline", drone_id=drone_id, reason="lost"))
        subscriptions = [(t.drone_state(drone_id), 0)] if isinstance(pose_feed, StatePoseFeed) else []
        self.session = MqttSession(broker, client_id=f"vision-{drone_id}", will=LastWill(t.worker_status(drone_id), lost),
                                   subscriptions=subscriptions, on_connect=self._publish_status, name=f"vision-{drone_id}")

    # ------------------------------------------------------------------ service life
    async def run(self, stop: asyncio.Event) -> str:
        """Until `stop` or the end of a recording; returns why it ended: "stopped", "ended" (the
        recording played to its end) or "failed" (a file that does not open or decode; `last_error`)."""
        done = asyncio.Event()  # the camera side finished (stop, or a recording ended)
        mqtt_stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.session.run(self._on_message, mqtt_stop), name="worker-mqtt")
            tg.create_task(self.pose_feed.run(mqtt_stop), name="worker-pose")
            sender = tg.create_task(self._send(), name="worker-send")
            status = tg.create_task(self._status_loop(done), name="worker-status")
            try:
                await self._watch(stop)
            except Exception as exc:  # a bug in a stage: say so on the status topic before going down
                self.outcome, self.last_error = "failed", f"{type(exc).__name__}: {exc}"
                raise
            finally:
                done.set()
                await self._drain()
                sender.cancel()
                await self._publish_final()
                status.cancel()
                mqtt_stop.set()
        return self.outcome

    async def _on_message(self, message) -> None:
        if isinstance(self.pose_feed, StatePoseFeed):
            payload = message.payload if isinstance(message.payload, (bytes, bytearray)) else str(message.payload).encode()
            if payload:
                self.pose_feed.on_state(bytes(payload), message.topic.value)

    # ------------------------------------------------------------------ camera side
    async def _watch(self, stop: asyncio.Event) -> None:
        from runloop.clock import ScenarioClock
        from runloop.eyes import VideoFeed
        from vision import VisionError
        from vision.sources import is_stream

        live = is_stream(self.source)
        period_s = 1.0 / self.settings.fps
        feed = None
        last_index = -1
        t_s = time.time()
        try:
            while not stop.is_set():
                if feed is None:
                    try:
                        feed = await asyncio.to_thread(VideoFeed, self.source, ScenarioClock(1.0),
                                                       self.settings.stall_timeout_s)
                    except VisionError as exc:
                        self._video_lost(str(exc))
                        if not live:  # a file that does not open will not get better
                            self.outcome = "failed"
                            return
                        await _sleep_or_stop(stop, self.settings.reopen_wait_s)
                        continue
                    self.video_state, last_index = "ok", -1
                    self._say(f"video {safe_source_name(self.source)} opened")
                if feed.error or feed.ended:
                    feed.close()
                    if feed.ended:
                        self.video_state, self.outcome = "ended", "ended"
                        self._say(f"video {safe_source_name(self.source)} ended after {self.frames} frames")
                        return
                    self._video_lost(feed.error)
                    feed = None
                    if not live:  # a corrupt recording: what it showed stands, the rest is unreadable
                        self.outcome = "failed"
                        return
                    self.video_reopens += 1
                    await _sleep_or_stop(stop, self.settings.reopen_wait_s)
                    continue
                frame = feed.latest()
                if frame is None or frame.index == last_index:
                    await _sleep_or_stop(stop, min(period_s, 0.02))
                    continue
                last_index = frame.index
                # Frame and pose are both as of now (the newest of each): stamped on the epoch,
                # the time base of the MQTT API.
                t_s = max(time.time(), t_s + 1e-3)
                pose = self.pose_feed.latest()
                if pose is not None and pose.alt_rel_m < MIN_PLACING_ALT_M:
                    pose = None
                if pose is not None:
                    pose = replace(pose, time_s=t_s, drone_id=self.drone_id)
                started = time.monotonic()
                events = await asyncio.to_thread(self.pipeline.process, frame.image, t_s, pose)
                self.frames += 1
                self._fps_window.append(time.monotonic())
                self._emit(events)
                await _sleep_or_stop(stop, max(0.0, period_s - (time.monotonic() - started)))
        finally:
            if feed is not None:
                feed.close()
            self._emit(self.pipeline.close(max(time.time(), t_s)))

    def _video_lost(self, error: str | None) -> None:
        if self.video_state != "lost":
            log.warning("%s: video %s: %s", self.drone_id, safe_source_name(self.source), error)
        self.video_state, self.last_error = "lost", error

    def _emit(self, events: list[IncidentEvent]) -> None:
        for ev in events:
            self.detections += 1
            self.outbox.put(ev)
            inc = ev.incident
            where = f" at {inc.lat:.6f},{inc.lon:.6f}" if inc.lat is not None else " (no position)"
            self._say(f"{ev.state.value:6} {inc.id} {inc.kind.value} {inc.confidence:.2f}{where}")

    def _say(self, text: str) -> None:
        log.info("%s: %s", self.drone_id, text)
        if self.progress is not None:
            print(f"{self.drone_id}: {text}", file=self.progress, flush=True)

    # ------------------------------------------------------------------ broker side
    async def _send(self) -> None:
        from dispatch.errors import DispatchError
        from dispatch.mqtt import Backoff
        from dispatch.publisher import detection_payload

        b = self.session.broker
        backoff = Backoff(b.reconnect_min_s, b.reconnect_max_s)
        topic = self.topics.detections(self.drone_id)
        while True:
            event = await self.outbox.take()
            try:
                await self.session.wait_connected(3600.0)
                await self.session.publish(topic, detection_payload(event), qos=1)
            except DispatchError as exc:  # not acknowledged: keep it at the head, retry after a pause
                self.outbox.retry()
                self.last_error = str(exc)
                await asyncio.sleep(backoff.next())
                continue
            except BaseException:
                self.outbox.retry()
                raise
            self.outbox.done()
            backoff.reset()
            self.published += 1

    async def _drain(self) -> None:
        """At the end: give queued detections `drain_timeout_s` to reach the broker; name what did not."""
        deadline = time.monotonic() + self.settings.drain_timeout_s
        while len(self.outbox) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if len(self.outbox):
            log.error("%s: %d detection(s) not delivered: the broker %s was not reachable for %.0f s",
                      self.drone_id, len(self.outbox), self.session.broker.url, self.settings.drain_timeout_s)

    def status(self, state: str = "online", reason: str | None = None):
        from dispatch.schemas import WorkerStatusMessage

        window = self._fps_window
        fps = (len(window) - 1) / (window[-1] - window[0]) if len(window) > 1 and window[-1] > window[0] else None
        return WorkerStatusMessage(
            state=state, drone_id=self.drone_id, reason=reason, ts=time.time(), video=self.video_state,
            pose=self.pose_feed.health, pose_source=self.pose_feed.name, frames=self.frames,
            frames_per_s=round(fps, 2) if fps is not None else None, detections=self.detections,
            published=self.published, queued=len(self.outbox), dropped=self.outbox.dropped,
            video_reopens=self.video_reopens, last_error=(self.last_error or "")[:500] or None)

    async def _publish_status(self, state: str = "online", reason: str | None = None) -> None:
        from dispatch.errors import DispatchError
        from dispatch.schemas import dump

        try:
            await self.session.publish(self.topics.worker_status(self.drone_id), dump(self.status(state, reason)),
                                       qos=1, retain=True)
        except DispatchError as exc:
            log.debug("%s: status not published: %s", self.drone_id, exc)

    async def _status_loop(self, done: asyncio.Event) -> None:
        while not done.is_set():
            await _sleep_or_stop(done, self.settings.status_interval_s)
            if not done.is_set() and self.session.connected.is_set():
                await self._publish_status()

    async def _publish_final(self) -> None:
        if self.session.connected.is_set():
            await self._publish_status("offline", self.outcome)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        await asyncio.sleep(0)
        return
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
