"""`patrol run --vision-workers process`: each drone's real video is watched by its own
`patrol watch --broker` process, as on a separate machine; its detections reach the run's
dispatcher over MQTT and a unit is alerted; the run ends its workers when it stops."""
import json
import os

import pytest

from patrol import main, run_patrol
from runloop.eventstore import EventStore
from runloop.scenario import parse_scenario

ONE_DRONE = {"name": "worker-one", "seed": 7, "cells": ["DY-C0713"], "duration_s": 30, "speedup": 1,
             "fleet": {"drones": 1, "airframe": {"pack_mah": 4160}, "dock": "DOCK-NE"}, "riders": {"count": 1},
             "camera": {"width_px": 640, "height_px": 360}}


@pytest.fixture(scope="module")
def fire_clip(tmp_path_factory):
    """A 5-s recording hovering 60 m over a fire that ignites at 0.5 s (what the drone's camera saw)."""
    from common.values import CameraModel
    from sim.camera import FireActor, HoverFlight, Scene
    from sim.camera.scenarios import Scenario, write_synthetic_video

    out = tmp_path_factory.mktemp("clip")
    scene = Scene(seed=7, actors=[FireActor((5.0, 3.0), ignite_s=0.5, name="fire-a")])
    return write_synthetic_video(Scenario("hover_fire", scene, HoverFlight((0.0, 0.0), alt_m=60.0), 5.0), out,
                                 CameraModel(640, 360, 82.0), fps=10)["video"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_recording_watched_by_a_worker_process_alerts_a_unit(fire_clip, tmp_path):
    """Drone 1 takes off; the run starts its vision worker process on the recording; the fire it
    sees reaches the dispatcher over the embedded broker as drone01's and a unit is alerted. When
    the run ends, no worker process is left."""
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
    assert [v["event"] for v in report["video"]] == ["video_opened", "video_ended"], log
    assert fires and all(e.data["drone_id"] == "drone01" for e in fires), log
    assert alerted & {e.subject for e in fires}, "no unit was alerted to the fire the worker saw"
    assert not _alive(started.data["pid"]), "the worker process outlived the run"
