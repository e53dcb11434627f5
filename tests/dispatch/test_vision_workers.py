"""Vision workers as services (runloop/worker.py, `patrol watch --broker`): each drone's video is
watched in its own process, detections reach the controller over a real Mosquitto and a unit is
alerted; a worker rides out a broker restart without losing what it saw."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiomqtt
import pytest

from common.geo import offset
from common.values import CameraModel, Pose
from sim.camera import FireActor, HoverFlight, Scene
from sim.camera.scenarios import Scenario, write_synthetic_video
from tests.dispatch.conftest import ORIGIN, wait_until
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.mosquitto

REPO = Path(__file__).resolve().parents[2]
CLIP_S = 5.0
D2_NORTH_M = 600.0  # where drone D2 says it is: its fire is another incident than D1's


@pytest.fixture(scope="module")
def fire_clip(tmp_path_factory):
    """A 5-s 640x360 clip hovering 60 m over a fire that ignites at 0.5 s, and a vision config that
    trusts the synthetic camera's flames (no models needed)."""
    out = tmp_path_factory.mktemp("clip")
    scene = Scene(seed=7, actors=[FireActor((5.0, 3.0), ignite_s=0.5, name="fire-a")])
    files = write_synthetic_video(Scenario("hover_fire", scene, HoverFlight((0.0, 0.0), alt_m=60.0), CLIP_S), out,
                                  CameraModel(640, 360, 82.0), fps=10)
    config = out / "vision.yaml"
    config.write_text("fire:\n  colour_alone: true\nmodels:\n  fire_smoke: ''\n  people_vehicles: ''\n"
                      "camera:\n  width_px: 640\n  height_px: 360\n")
    first = json.loads(files["telemetry"].read_text().splitlines()[0])
    return files["video"], config, first


def clip_pose(first: dict, drone_id: str, north_m: float = 0.0) -> Pose:
    lat, lon = offset(first["lat"], first["lon"], north_m, 0.0)
    return Pose(time_s=time.time(), lat=lat, lon=lon, alt_rel_m=60.0, alt_msl_m=70.0, drone_id=drone_id)


def start_worker(clip: Path, config: Path, url: str, drone_id: str, pose: str, log_path: Path) -> subprocess.Popen:
    with log_path.open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", "patrol", "watch", str(clip), "--broker", url, "--drone-id",
                                 drone_id, "--pose", pose, "--config", str(config), "--status-interval", "1"],
                                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


class MavlinkAutopilot:
    """Drone D2's autopilot as its vision worker hears it: HEARTBEAT, ATTITUDE and
    GLOBAL_POSITION_INT at 10 Hz, sent over UDP to the worker (`mavlink:udpin:...`)."""

    def __init__(self, port: int, pose: Pose):
        from pymavlink import mavutil

        self.link = mavutil.mavlink_connection(f"udpout:127.0.0.1:{port}", source_system=2, source_component=1)
        self.pose = pose
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, daemon=True)

    def _send(self) -> None:
        from pymavlink import mavutil

        mav = self.link.mav
        t0 = time.monotonic()
        while not self._stop.wait(0.1):
            ms = int((time.monotonic() - t0) * 1000)
            mav.heartbeat_send(mavutil.mavlink.MAV_TYPE_QUADROTOR, mavutil.mavlink.MAV_AUTOPILOT_ARDUPILOTMEGA, 0, 0, 0)
            mav.attitude_send(ms, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
            p = self.pose
            mav.global_position_int_send(ms, int(p.lat * 1e7), int(p.lon * 1e7), int(p.alt_msl_m * 1000),
                                         int(p.alt_rel_m * 1000), 0, 0, 0, 0)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(2)
        self.link.close()


async def feed_drone_state(dispatcher, pose: Pose, stop: asyncio.Event) -> None:
    """The controller's view of drone D1 (as `patrol run` feeds it), retained on patrol/drones/D1/state."""
    from dataclasses import replace

    while not stop.is_set():
        dispatcher.update_drone_state(replace(pose, time_s=time.time()), mode="GUIDED")
        await asyncio.sleep(0.2)


async def retained_status(mosquitto, drone_id: str) -> dict:
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as c:
        await c.subscribe(f"patrol/workers/{drone_id}/status", 1)
        async with asyncio.timeout(3):
            async for m in c.messages:
                return json.loads(m.payload)


async def test_two_worker_processes_feed_the_controller_and_units_are_alerted(rig, fire_clip, tmp_path):
    """Two `patrol watch --broker` processes (D1 posed from the controller's drone state, D2 from its
    MAVLink stream) each see a fire; the controller in this process opens two incidents and alerts
    the nearest unit for each; both workers end with the clip and say so on their status topic."""
    clip, config, first = fire_clip
    await rig.start_dispatcher(drones=("D1", "D2"), drone_state_interval_s=0.2, ack_timeout_s=60)
    m01 = await rig.add_unit("M01", 100, 0)
    m02 = await rig.add_unit("M02", D2_NORTH_M + 100, 0)
    await rig.wait_units_known("M01", "M02")
    stop = asyncio.Event()
    state_feed = asyncio.create_task(feed_drone_state(rig.dispatcher, clip_pose(first, "D1"), stop))
    mav_port = free_port()
    url = rig.mosquitto.url
    with MavlinkAutopilot(mav_port, clip_pose(first, "D2", north_m=D2_NORTH_M)):
        workers = {d: start_worker(clip, config, url, d, pose, tmp_path / f"{d}.log")
                   for d, pose in (("D1", "mqtt"), ("D2", f"mavlink:udpin:127.0.0.1:{mav_port}"))}
        try:
            await wait_until(lambda: m01.shown and m02.shown, 25, "a unit alerted for each drone's fire")
            for proc in workers.values():
                await asyncio.to_thread(proc.wait, 15)
        finally:
            stop.set()
            await state_feed
            for proc in workers.values():
                if proc.poll() is None:
                    proc.kill()
    logs = {d: (tmp_path / f"{d}.log").read_text() for d in workers}
    assert [p.returncode for p in workers.values()] == [0, 0], logs
    (alert1,), (alert2,) = m01.shown, m02.shown
    assert alert1.incident.drone_id == "D1" and alert1.incident.kind.value == "fire"
    assert alert2.incident.drone_id == "D2" and alert2.incident.kind.value == "fire"
    assert alert2.incident.lat - alert1.incident.lat == pytest.approx(D2_NORTH_M / 111_000, abs=0.0005)
    assert alert1.snapshot and alert2.snapshot  # the snapshot came with the detection
    for drone_id in ("D1", "D2"):
        status = await retained_status(rig.mosquitto, drone_id)
        assert (status["state"], status["reason"], status["video"]) == ("offline", "ended", "ended")
        assert status["published"] == status["detections"] > 0 and status["dropped"] == 0
        assert status["pose_source"] == ("mqtt" if drone_id == "D1" else "mavlink")


async def test_worker_keeps_what_it_saw_across_a_broker_restart(rig, fire_clip):
    """The broker goes away for 1.5 s after the fire was reported: the worker keeps watching, queues
    what it sees, reconnects by itself and delivers everything (the end of the incident included),
    in order, dropping nothing; its retained status is back online."""
    from runloop.worker import StatePoseFeed, VisionWorker, WorkerSettings
    from vision import load_config

    clip, config, first = fire_clip
    await rig.start_dispatcher(drones=("D1",), drone_state_interval_s=0.2)
    stop = asyncio.Event()
    state_feed = asyncio.create_task(feed_drone_state(rig.dispatcher, clip_pose(first, "D1"), stop))
    worker = VisionWorker(str(clip), rig.broker_config, "D1", StatePoseFeed("D1"), load_config(config),
                          WorkerSettings(status_interval_s=0.5))
    run = asyncio.create_task(worker.run(stop))
    try:
        await wait_until(lambda: rig.dispatcher.cases, 10, "the fire reported to the controller")
        (incident_id,) = rig.dispatcher.cases
        await asyncio.to_thread(rig.mosquitto.restart, 1.5)
        assert await asyncio.wait_for(run, 20) == "ended"
    finally:
        stop.set()
        await state_feed
        if not run.done():
            await run
    assert worker.session.connections >= 2
    assert worker.outbox.dropped == 0 and len(worker.outbox) == 0 and worker.published == worker.detections
    await wait_until(lambda: incident_id not in rig.dispatcher.cases, 5, "the incident's end to reach the controller")
    status = await retained_status(rig.mosquitto, "D1")
    assert (status["state"], status["reason"], status["dropped"]) == ("offline", "ended", 0)


async def test_detections_of_an_unknown_drone_are_refused(rig, caplog):
    """A controller told its drones drops a detection from any other drone, saying why, and carries on."""
    from tests.dispatch.conftest import make_incident

    caplog.set_level(logging.WARNING, logger="dispatch.controller")
    await rig.start_dispatcher(drones=("D1",))
    await rig.publish(make_incident("fire-from-d9", drone_id="D9"))
    await wait_until(lambda: rig.dispatcher.stats.invalid, 3, "the detection from D9 to be refused")
    assert "unknown drone 'D9'" in rig.dispatcher.stats.last_invalid_reason
    assert any("patrol/detections/D9" in r.getMessage() for r in caplog.records)
    await rig.publish(make_incident("fire-from-d1", drone_id="D1"))
    await wait_until(lambda: "fire-from-d1" in rig.dispatcher.cases, 3, "D1's detection taken")
    assert "fire-from-d9" not in rig.dispatcher.cases


async def test_a_killed_worker_shows_offline(mosquitto_broker, fire_clip, tmp_path):
    """A worker process that dies (SIGKILL, no goodbye) is shown offline, reason lost, by its Last Will."""
    clip, config, _ = fire_clip
    proc = start_worker(clip, config, mosquitto_broker.url, "D1", "none", tmp_path / "D1.log")
    try:
        async def status_is(state: str) -> dict:
            while True:
                status = await retained_status(mosquitto_broker, "D1")
                if status["state"] == state:
                    return status
                await asyncio.sleep(0.1)

        await asyncio.wait_for(status_is("online"), 15)
        proc.kill()
        status = await asyncio.wait_for(status_is("offline"), 5)
    finally:
        proc.kill()
        proc.wait(5)
    assert status["reason"] == "lost"


def test_worker_outbox_drops_updates_first_and_says_so(caplog):
    """A full queue makes room by dropping the oldest update, then the oldest message; each drop is
    logged with the incident id and counted."""
    from common.values import Incident, IncidentEvent, IncidentKind, IncidentState
    from runloop.worker import DetectionOutbox

    def ev(state, incident_id):
        return IncidentEvent(state, Incident(id=incident_id, kind=IncidentKind.FIRE, confidence=0.9, first_seen_s=0,
                                             last_seen_s=0, drone_id="D1"))

    box = DetectionOutbox(max_events=3)
    for e in (ev(IncidentState.NEW, "a"), ev(IncidentState.UPDATE, "a"), ev(IncidentState.NEW, "b")):
        box.put(e)
    assert box.put(ev(IncidentState.UPDATE, "a")) == []  # replaces the queued update of a
    dropped = box.put(ev(IncidentState.END, "a"))
    assert [(d.state, d.incident.id) for d in dropped] == [(IncidentState.UPDATE, "a")]
    dropped = box.put(ev(IncidentState.NEW, "c"))
    assert [(d.state, d.incident.id) for d in dropped] == [(IncidentState.NEW, "a")]
    assert box.dropped == 2 and len(box) == 3
    assert "dropped update a" in caplog.text and "dropped new a" in caplog.text


@pytest.mark.parametrize(("args", "message"), [
    (["--pose", "mqtt"], "--pose is for a vision worker: give --broker"),
    (["--broker", "mqtt://127.0.0.1:1"], "needs --drone-id"),
    (["--broker", "mqtt://127.0.0.1:1", "--drone-id", "D1", "--pose", "gps"], "--pose 'gps': use mavlink:URL"),
    (["--broker", "mqtt://127.0.0.1:1", "--drone-id", "D/1"], "--drone-id 'D/1' is not a valid id"),
    (["--broker", "mqtt://127.0.0.1:1", "--drone-id", "D1", "--telemetry", "x.jsonl"], "takes its pose live"),
])
def test_worker_command_line_mistakes_are_named(fire_clip, capsys, args, message):
    import patrol

    clip, config, _ = fire_clip
    assert patrol.main(["watch", str(clip), "--config", str(config), *args]) == 1
    assert message in capsys.readouterr().err


class MjpegCamera:
    """A network camera on 127.0.0.1 serving a clip's frames as an HTTP MJPEG stream, in a loop,
    that can be switched off and on again (the stream a worker loses and must reopen)."""

    def __init__(self, clip: Path, fps: float = 10.0):
        import cv2

        cap = cv2.VideoCapture(str(clip))
        self.jpegs = []
        while True:
            ok, image = cap.read()
            if not ok:
                break
            self.jpegs.append(cv2.imencode(".jpg", image)[1].tobytes())
        cap.release()
        self.period_s = 1.0 / fps
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/cam.mjpg"
        self._server = None
        self._on = threading.Event()

    def switch_on(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        camera = self

        class Stream(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                try:
                    while camera._on.is_set():
                        jpeg = camera.jpegs[i % len(camera.jpegs)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpeg) + jpeg + b"\r\n")
                        i += 1
                        time.sleep(camera.period_s)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self._on.set()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Stream)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def switch_off(self) -> None:
        self._on.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


async def test_worker_reopens_a_lost_video_stream(mosquitto_broker, fire_clip):
    """The camera's stream goes dead for 1.5 s: the worker says video lost, keeps trying, and
    watches again once the camera is back (and still finds the fire)."""
    from runloop.worker import PoseFeed, VisionWorker, WorkerSettings
    from dispatch.config import BrokerConfig
    from vision import load_config

    clip, config, _ = fire_clip
    camera = MjpegCamera(clip)
    camera.switch_on()
    worker = VisionWorker(camera.url, BrokerConfig(url=mosquitto_broker.url), "D1", PoseFeed("D1"), load_config(config),
                          WorkerSettings(stall_timeout_s=1.0, reopen_wait_s=0.3, status_interval_s=0.3))
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop))
    try:
        await wait_until(lambda: worker.frames >= 3, 10, "the worker watching the stream")
        camera.switch_off()
        await wait_until(lambda: worker.video_state == "lost", 5, "the worker to notice the stream is gone")
        frames_before = worker.frames
        await asyncio.sleep(1.0)
        camera.switch_on()
        await wait_until(lambda: worker.video_state == "ok" and worker.frames > frames_before + 3, 10,
                         "the worker watching again after the camera came back")
        await wait_until(lambda: worker.detections, 10, "the fire found in the stream")
    finally:
        stop.set()
        camera.switch_off()
        assert await asyncio.wait_for(run, 15) == "stopped"
    assert worker.video_reopens >= 1
    status = await retained_status(mosquitto_broker, "D1")
    assert (status["state"], status["reason"]) == ("offline", "stopped") and status["video_reopens"] >= 1
