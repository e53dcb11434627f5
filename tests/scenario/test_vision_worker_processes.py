"""`patrol run --vision-workers process`: each drone's real video is watched by its own
`patrol watch --broker` process, as on a separate machine; its detections reach the run's
dispatcher over MQTT and a unit is alerted; the run ends its workers when it stops."""
import json
import os

import pytest

from patrol import main, run_patrol
from runloop.eventstore import EventStore
from runloop.scenario import parse_scenario

ONE_DRONE = {"name": "worker-one", "seed": 7, "cells": ["DY-C0713"], "duration_s": 15, "speedup": 1,
             "fleet": {"drones": 1, "airframe": {"pack_mah": 4160}, "dock": "DOCK-NE"}, "riders": {"count": 1},
             "camera": {"width_px": 640, "height_px": 360}}


@pytest.fixture(scope="module")
def fire_clip(tmp_path_factory):
    """An 8-s recording hovering 60 m over a fire that ignites at 0.5 s (what the drone's camera saw):
    longer than the run has left after take-off, so the run stops its worker mid-clip."""
    from common.values import CameraModel
    from sim.camera import FireActor, HoverFlight, Scene
    from sim.camera.scenarios import Scenario, write_synthetic_video

    out = tmp_path_factory.mktemp("clip")
    scene = Scene(seed=7, actors=[FireActor((5.0, 3.0), ignite_s=0.5, name="fire-a")])
    return write_synthetic_video(Scenario("hover_fire", scene, HoverFlight((0.0, 0.0), alt_m=60.0), 8.0), out,
                                 CameraModel(640, 360, 82.0), fps=10)["video"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.soak  # ~22 s: a real-time run (speedup 1); the default run has the shorter worker tests below
async def test_recording_watched_by_a_worker_process_alerts_a_unit(fire_clip, tmp_path):
    """Drone 1 takes off (~9 s at speedup 1); the run starts its vision worker process on the
    recording; the fire it sees reaches the dispatcher over the embedded broker as drone01's and a
    unit is alerted. The run ends at 15 s, mid-clip: it stops the worker, which says so, and no
    worker process is left."""
    # The recording was rendered by the synthetic camera, whose flames the colour detector alone
    # is trusted with (real video needs the smoke/fire model).
    scenario = parse_scenario({**ONE_DRONE, "vision": {"fire": {"colour_alone": True},
                                                       "models": {"fire_smoke": "", "people_vehicles": ""}}})
    report = await run_patrol(scenario, tmp_path, live=False, video={"1": str(fire_clip)}, vision_workers="process")
    store = EventStore(tmp_path, readonly=True)
    try:
        (started,) = store.events("worker_started")
        fires = [e for e in store.events("detection") if e.data["kind"] == "fire"]
        alerted = {e.data.get("incident_id") for e in store.events("alert_received")}
        assert store.meta("vision_workers") == "process"
    finally:
        store.close()
    log = (tmp_path / "vision-workers" / "drone01.log").read_text()
    assert not report["stage_errors"], (report["stage_errors"], log)
    assert [v["event"] for v in report["video"]] == ["video_opened"], log  # stopped by the run, not ended
    assert fires and all(e.data["drone_id"] == "drone01" for e in fires), log
    assert alerted & {e.subject for e in fires}, "no unit was alerted to the fire the worker saw"
    assert not _alive(started.data["pid"]), "the worker process outlived the run"



def _scenario_file(tmp_path, **changes):
    import yaml

    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump({**ONE_DRONE, **changes}))
    return path


@pytest.mark.parametrize("changes, video, says", [
    ({}, [], "drone01 would be watched by the synthetic camera"),
    ({"speedup": 20}, ["--video", "drone01=rtsp://127.0.0.1:1/cam"], "this run is at speedup 20"),
    ({}, ["--video", "drone01=rtsp://127.0.0.1:1/cam", "--broker", "mqtt://patrol-controller:pw@127.0.0.1:1"],
     "the broker takes logins; give --worker-logins"),
])
def test_worker_processes_refused_where_they_cannot_watch(tmp_path, capsys, changes, video, says):
    """Synthetic camera (its world lives inside the run), a run faster than the wall clock, or a broker
    with logins but none for the workers (they would share the controller's): refused before anything
    flies, naming the option and why."""
    code = main(["run", "--scenario", str(_scenario_file(tmp_path, **changes)), "--out", str(tmp_path / "run"),
                 "--no-live", "--vision-workers", "process", *video])
    assert code == 2
    err = capsys.readouterr().err
    assert "--vision-workers process" in err and says in err and "--vision-workers in-process" in err
    assert not (tmp_path / "run" / "report.json").exists()


@pytest.mark.mosquitto
async def test_a_lost_worker_is_named_and_a_stopped_one_ends(mosquitto_broker, fire_clip, tmp_path):
    """Two drones' worker processes on a recording: what they see reaches the run over MQTT as their
    drone's detections. One that dies under the run is reported as that drone's lost vision worker;
    one the run stops ends (SIGTERM) without being counted lost."""
    import asyncio
    from types import SimpleNamespace

    from common.values import CameraModel
    from dispatch.config import BrokerConfig
    from runloop.clock import ScenarioClock
    from runloop.eyes import WorkerProcessEyes
    from runloop.live import DroneLive, LiveState, format_table
    from tests.dispatch.conftest import wait_until
    from vision import VisionConfig

    store = EventStore(tmp_path)
    airborne = SimpleNamespace(state=SimpleNamespace(pose=SimpleNamespace(alt_rel_m=60.0), armed=True))
    trusting_flames = VisionConfig.model_validate({"fire": {"colour_alone": True}})  # synthetic clip, no model

    def eyes(drone_id):
        return WorkerProcessEyes(drone_id, airborne, str(fire_clip),
                                 BrokerConfig(url=mosquitto_broker.url), trusting_flames, CameraModel(640, 360, 82.0),
                                 ScenarioClock(1.0), store, tmp_path)

    lost, stopped = eyes("D1"), eyes("D2")
    stop = asyncio.Event()
    runs = [asyncio.create_task(e.run(stop)) for e in (lost, stopped)]
    try:
        await wait_until(lambda: lost.status.get("state") == stopped.status.get("state") == "online", 20,
                         "both workers online")
        await wait_until(lambda: stopped.detections, 10, "D2's worker to report the fire")
        assert stopped.live_status().startswith("online, video ok")
        lost.proc.kill()
        await asyncio.wait_for(runs[0], 10)
        stop.set()
        await asyncio.wait_for(runs[1], 20)
    finally:
        stop.set()
        for e in (lost, stopped):
            await e.end()
    errors = [(e.subject, e.data["error"]) for e in store.events("stage_error")]
    detections = [e.data for e in store.events("detection")]
    store.close()
    assert detections and {d["drone_id"] for d in detections} <= {"D1", "D2"} and "fire" in {d["kind"] for d in detections}
    assert len(errors) == 1 and errors[0][0] == "vision-worker-D1", errors
    assert "vision worker lost" in errors[0][1]
    assert lost.proc.returncode == -9 and stopped.proc.returncode == 0
    assert stopped.status["state"] == "offline" and stopped.status["reason"] == "stopped"
    table = format_table(LiveState(5.0, tuple(DroneLive(e.drone_id, "AUTO", True, True, None, None, None, None, None, "",
                                                        0, 1, (), vision=e.live_status()) for e in (lost, stopped)), (), ()))
    assert "vision workers: D1 LOST (killed by signal 9); D2 offline (stopped)" in table


def test_worker_logins_must_name_each_watched_drone(tmp_path, capsys):
    logins = tmp_path / "credentials.yaml"
    logins.write_text("patrol-controller: pw1\ndrone-drone02: pw2\n")
    code = main(["run", "--scenario", str(_scenario_file(tmp_path)), "--out", str(tmp_path / "run"), "--no-live",
                 "--vision-workers", "process", "--video", "drone01=rtsp://127.0.0.1:1/cam",
                 "--worker-logins", str(logins)])
    assert code == 2
    assert "no login drone-drone01 for drone01's vision worker" in capsys.readouterr().err


@pytest.mark.mosquitto
async def test_worker_process_logs_in_as_its_drone(fire_clip, tmp_path):
    """On a `patrol broker-config` Mosquitto (no anonymous access, ACLs), the worker process logs in as
    drone-D1, whose ACL lets it publish D1's detections and status; its password is in its
    environment, never on its command line."""
    import asyncio
    from types import SimpleNamespace

    from common.values import CameraModel
    from dispatch.broker_config import BrokerLayout, write_broker_config
    from dispatch.config import BrokerConfig
    from runloop.clock import ScenarioClock
    from runloop.eyes import WorkerProcessEyes
    from tests.dispatch.conftest import wait_until
    from tests.fixtures.broker import mosquitto_running, root_user_lines
    from vision import VisionConfig

    made = {}

    def config(port, workdir):
        made["files"] = write_broker_config(BrokerLayout(units=["M01"], drones=["D1"], port=port, tls_port=0, ws_port=0,
                                                         run_as_root=bool(root_user_lines())), workdir / "broker")
        return made["files"].config_path.read_text()

    with mosquitto_running(config) as broker:
        creds = made["files"].credentials
        store = EventStore(tmp_path)
        airborne = SimpleNamespace(state=SimpleNamespace(pose=SimpleNamespace(alt_rel_m=60.0), armed=True))
        watcher = BrokerConfig(url=broker.url, username="patrol-operator", password=creds["patrol-operator"])
        worker = BrokerConfig(url=broker.url, username="drone-D1", password=creds["drone-D1"])
        trusting_flames = VisionConfig.model_validate({"fire": {"colour_alone": True}})  # synthetic clip, no model
        zone = [(32.0, 119.5), (32.001, 119.5), (32.001, 119.501)]
        eyes = WorkerProcessEyes("D1", airborne, str(fire_clip), watcher, trusting_flames, CameraModel(640, 360, 82.0),
                                 ScenarioClock(1.0), store, tmp_path, worker_broker=worker, zones=[zone])
        stop = asyncio.Event()
        run = asyncio.create_task(eyes.run(stop))
        try:
            await wait_until(lambda: eyes.detections, 20, "D1's detections, published under its own login")
            cmdline = open(f"/proc/{eyes.proc.pid}/cmdline", "rb").read().split(b"\0")
        finally:
            stop.set()
            await asyncio.wait_for(run, 20)
        store.close()
    assert b"drone-D1" in cmdline and not any(creds["drone-D1"].encode() in arg for arg in cmdline)
    assert b"32.0000000,119.5000000;32.0010000,119.5000000;32.0010000,119.5010000" in cmdline  # the restricted zone
    assert eyes.status["state"] == "offline" and eyes.lost is None


RUN_THAT_DIES = """
import asyncio, sys
from pathlib import Path
from types import SimpleNamespace
from common.values import CameraModel
from dispatch.config import BrokerConfig
from runloop.clock import ScenarioClock
from runloop.eventstore import EventStore
from runloop.eyes import WorkerProcessEyes
from vision import VisionConfig

async def main(clip, url, out):
    airborne = SimpleNamespace(state=SimpleNamespace(pose=SimpleNamespace(alt_rel_m=60.0), armed=True))
    eyes = WorkerProcessEyes("D1", airborne, clip, BrokerConfig(url=url), VisionConfig(), CameraModel(640, 360, 82.0),
                             ScenarioClock(1.0), EventStore(Path(out)), Path(out))
    run = asyncio.create_task(eyes.run(asyncio.Event()))
    await run  # it says "D1: vision worker process PID watching ..." once the worker is started

asyncio.run(main(*sys.argv[1:]))
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for a parent that never reaps it (PID 1 in a container)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.mosquitto
def test_a_killed_run_leaves_no_worker_behind(mosquitto_broker, fire_clip, tmp_path):
    """The run's process is SIGKILL-ed (no chance to stop anything): its worker process goes too."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    run = subprocess.Popen([sys.executable, "-c", RUN_THAT_DIES, str(fire_clip), mosquitto_broker.url, str(tmp_path)],
                           cwd=repo, stdout=subprocess.PIPE, text=True)
    worker_pid = 0
    try:
        worker_pid = int(run.stdout.readline().split("vision worker process ")[1].split()[0])
        assert _running(worker_pid)
        run.send_signal(signal.SIGKILL)
        run.wait(5)
        deadline = time.monotonic() + 5
        while _running(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(worker_pid), "the worker outlived the run that was killed"
    finally:
        run.kill()
        if worker_pid and _running(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)
