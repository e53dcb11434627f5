"""A drone's real video instead of the synthetic camera (`patrol run --video DRONE=SOURCE`): what
vision finds in it is placed under the drone's live pose and dispatched like any detection."""
import pytest

from patrol import main, run_patrol
from runloop.eventstore import EventStore
from runloop.scenario import parse_scenario

ONE_DRONE = {"name": "video-one", "seed": 7, "cells": ["DY-C0713"], "duration_s": 600, "speedup": 20,
             "fleet": {"drones": 1, "airframe": {"pack_mah": 4160}, "dock": "DOCK-NE"}, "riders": {"count": 1},
             "camera": {"width_px": 640, "height_px": 360}}


@pytest.fixture(scope="module")
def fire_recording(tmp_path_factory):
    """A 24 s recording from a drone flying a lane over burning fires (what its camera saw)."""
    from common.values import CameraModel
    from sim.camera.scenarios import fires, write_synthetic_video

    out = tmp_path_factory.mktemp("video")
    return write_synthetic_video(fires(), out, camera=CameraModel(640, 360, 82.0), fps=10.0)["video"]


@pytest.mark.mosquitto
@pytest.mark.e2e
async def test_recorded_video_is_watched_instead_of_the_synthetic_camera(mosquitto_broker, sim_fleet, fire_recording,
                                                                          tmp_path):
    """Drone 1 flies its sortie; its eyes replay the recording from take-off. The fires in it are
    reported from drone01, placed near where the drone was, and a unit is alerted."""
    vehicles = await sim_fleet(count=1, speedup=20.0, home=(32.0089932, 119.5948464, 10.0))
    # The recording was rendered by the synthetic camera, whose flames the colour detector alone
    # is trusted with (real video needs the smoke/fire model).
    scenario = parse_scenario({**ONE_DRONE, "pass": {"sorties_completed": True},
                               "vision": {"fire": {"colour_alone": True}}})
    report = await run_patrol(scenario, tmp_path, broker_url=mosquitto_broker.url, live=False,
                              connect_base=vehicles.urls[0], video={"1": str(fire_recording)})
    assert not report["stage_errors"], report["stage_errors"]
    assert [v["event"] for v in report["video"]] == ["video_opened", "video_ended"]
    store = EventStore(tmp_path, readonly=True)
    try:
        assert store.meta("video") == {"drone01": str(fire_recording)}
        opened = list(store.events("video_opened"))
        ended = list(store.events("video_ended"))
        fires = [e for e in store.events("detection") if e.data["kind"] == "fire"]
        alerted = {e.data.get("incident_id") for e in store.events("alert_received")}
    finally:
        store.close()
    assert len(opened) == 1 and not opened[0].data["live"]
    assert len(ended) == 1 and ended[0].data["frames"] > 50, ended
    assert opened[0].t_s < ended[0].t_s < opened[0].t_s + 40  # a 24 s recording, replayed on the scenario clock
    assert fires and all(e.data["drone_id"] == "drone01" for e in fires)
    # placed under the live drone: inside the cell it was sweeping, kilometres from the sim's
    # own scene origin
    from common.geo import distance_m
    assert all(distance_m(e.data["lat"], e.data["lon"], 32.0089932, 119.5948464) < 1500 for e in fires)
    assert alerted & {e.subject for e in fires}, "no unit was alerted to a fire from the video"


def _scenario_file(tmp_path):
    import yaml

    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump(ONE_DRONE))
    return path


@pytest.mark.parametrize("video, says", [
    ("3=flight.mp4", "no such drone (this patrol flies drone01)"),
    ("drone01=/nonexistent/flight.mp4", "does not exist"),
])
def test_bad_video_source_is_refused_before_flying(tmp_path, capsys, video, says):
    code = main(["run", "--scenario", str(_scenario_file(tmp_path)), "--out", str(tmp_path / "run"),
                 "--no-live", "--video", video])
    assert code == 2
    err = capsys.readouterr().err
    assert "--video" in err and says in err
    assert not (tmp_path / "run" / "report.json").exists()


def test_corrupt_recording_is_refused_before_flying(tmp_path, capsys):
    bad = tmp_path / "flight.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    code = main(["run", "--scenario", str(_scenario_file(tmp_path)), "--out", str(tmp_path / "run"), "--no-live",
                 "--video", f"drone01={bad}"])
    assert code == 2
    assert "cannot decode" in capsys.readouterr().err


def test_video_argument_needs_drone_and_source(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--scenario", "danyang-demo", "--video", "rtsp://10.0.0.5/cam"])
    assert exc.value.code == 2
    assert "DRONE=SOURCE" in capsys.readouterr().err


class MjpegCamera:
    """An IP camera on loopback: multipart/x-mixed-replace JPEG over HTTP at `fps`, as many drone
    video links and encoders serve it. The first viewer is cut off after `cut_after` frames."""

    def __init__(self, frames: list[bytes], fps: float = 10.0, cut_after: int = 30):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        camera = self
        self.frames, self.fps, self.cut_after = frames, fps, cut_after
        self.connections = 0
        self.next_frame = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                import time

                camera.connections += 1
                first = camera.connections == 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                sent = 0
                try:
                    while camera.next_frame < len(camera.frames) and not (first and sent >= camera.cut_after):
                        jpg = camera.frames[camera.next_frame]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
                                         + jpg + b"\r\n")
                        camera.next_frame += 1
                        sent += 1
                        time.sleep(1.0 / camera.fps)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cam.mjpg"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.mosquitto
async def test_live_stream_that_drops_is_reopened_and_its_fires_reported(mosquitto_broker, tmp_path):
    """A drone's camera stream over HTTP (MJPEG) drops after 3 s and comes back: the eyes say the
    video was lost, reopen it, and the fires it shows are reported from that drone, placed below it."""
    import asyncio
    from types import SimpleNamespace

    import cv2

    from common.geo import distance_m
    from common.values import CameraModel, Pose
    from dispatch.config import BrokerConfig
    from dispatch.publisher import DetectionPublisher
    from runloop.clock import ScenarioClock
    from runloop.eyes import VideoEyes
    from sim.camera import SyntheticCamera
    from sim.camera.scenarios import fires
    from vision import IncidentRegistry, VisionConfig

    model = CameraModel(640, 360, 82.0)
    scenario = fires()
    cam = SyntheticCamera(scenario.scene, model)
    frames = []
    for i in range(100):  # 10 s of the lane flight over the fires, at 10 fps
        t = 6.0 + i / 10.0
        frames.append(cv2.imencode(".jpg", cam.render(scenario.flight.pose(scenario.scene, t), t))[1].tobytes())
    camera = MjpegCamera(frames)
    here = Pose(time_s=0.0, lat=32.0100, lon=119.5950, alt_rel_m=60.0, alt_msl_m=70.0, drone_id="drone01")
    vehicle = SimpleNamespace(state=SimpleNamespace(pose=here, armed=True))
    store = EventStore(tmp_path)
    publisher = DetectionPublisher(BrokerConfig(url=mosquitto_broker.url), client_id="test-video-eyes")
    await publisher.__aenter__()
    vcfg = VisionConfig().for_synthetic_camera()  # the video is rendered by the synthetic camera
    eyes = VideoEyes("drone01", vehicle, camera.url, SimpleNamespace(restricted_zones=list), ScenarioClock(1.0), store,
                     publisher, model, 5.0, vcfg, IncidentRegistry(vcfg.incidents, id_prefix="inc"))
    eyes.stall_timeout_s, eyes.reopen_wait_s = 1.0, 0.5
    stop = asyncio.Event()
    task = asyncio.create_task(eyes.run(stop))
    try:
        for _ in range(300):  # the whole stream is 10 s; give it 30
            await asyncio.sleep(0.1)
            if camera.next_frame >= len(frames) and eyes._outbox.empty():
                break
    finally:
        stop.set()
        await task
        await publisher.close()
        camera.close()
    kinds = [e.kind for e in store.events("video_opened", "video_lost")]
    fires_seen = [e for e in store.events("detection") if e.data["kind"] == "fire"]
    store.close()
    assert kinds[:3] == ["video_opened", "video_lost", "video_opened"], kinds
    assert camera.connections >= 2
    assert fires_seen, f"no fire reported from {eyes.frames} frames"
    assert all(e.data["drone_id"] == "drone01" for e in fires_seen)
    assert all(distance_m(e.data["lat"], e.data["lon"], here.lat, here.lon) < 100 for e in fires_seen)
