"""Sources, telemetry, config and the `patrol watch` command: bad input gives clear VisionErrors."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import patrol
from common.values import CameraModel, IncidentState, Pose
from sim.camera import FireActor, HoverFlight, Scene, SyntheticCamera
from sim.camera.scenarios import Scenario, write_synthetic_video
from vision import IncidentPipeline, IncidentRegistry, VisionConfig, VisionError
from vision.sources import FileSource, ImageFolderSource
from vision.telemetry import Telemetry, load_telemetry


def _fire_scenario(duration_s: float = 4.0) -> Scenario:
    scene = Scene(seed=7, actors=[FireActor((5.0, 3.0), ignite_s=0.5, name="fire-a")])
    return Scenario("hover_fire", scene, HoverFlight((0.0, 0.0), alt_m=60.0), duration_s)


@pytest.fixture(scope="module")
def synthetic_files(tmp_path_factory):
    return write_synthetic_video(_fire_scenario(), tmp_path_factory.mktemp("video"), CameraModel(640, 360, 82.0))


def _colour_fire_config(tmp_path):
    """The synthetic camera's flames are found by colour and flicker alone (no smoke/fire model)."""
    path = tmp_path / "vision.yaml"
    path.write_text("fire:\n  colour_alone: true\nmodels:\n  fire_smoke: ''\n  people_vehicles: ''\n")
    return str(path)


def test_watch_cli_writes_incidents_snapshots_and_sheet(synthetic_files, tmp_path, capsys):
    """`patrol watch VIDEO --telemetry POSES` finds the fire, places it and writes its outputs."""
    cam = tmp_path / "cam.yaml"
    cam.write_text("width_px: 640\nheight_px: 360\nhfov_deg: 82\n")
    out = tmp_path / "out"
    rc = patrol.main(["watch", str(synthetic_files["video"]), "--telemetry", str(synthetic_files["telemetry"]),
                      "--camera", str(cam), "--out", str(out), "--config", _colour_fire_config(tmp_path)])
    assert rc == 0
    lines = [json.loads(x) for x in (out / "incidents.jsonl").read_text().splitlines()]
    fires = [x for x in lines if x["kind"] == "fire"]
    assert fires and fires[0]["state"] == "new" and fires[-1]["state"] == "end"
    assert fires[0]["lat"] is not None and fires[0]["error_m"] > 0
    snap = out / fires[0]["snapshot"]
    assert 0 < snap.stat().st_size <= 30_000
    assert cv2.imread(str(out / "incidents.png")) is not None
    assert "frames/s" in capsys.readouterr().err


def test_watch_without_telemetry_reports_pixel_boxes(synthetic_files, tmp_path):
    """No telemetry: the fire is still reported, with a box and no lat/lon."""
    out = tmp_path / "out"
    assert patrol.main(["watch", str(synthetic_files["video"]), "--out", str(out),
                        "--config", _colour_fire_config(tmp_path)]) == 0
    lines = [json.loads(x) for x in (out / "incidents.jsonl").read_text().splitlines()]
    assert any(x["kind"] == "fire" and x["lat"] is None and x["bbox_px"] for x in lines)


def test_watch_without_models_says_what_is_off_and_raises_no_colour_fire(synthetic_files, tmp_path, capsys,
                                                                         monkeypatch):
    """Real video, no models, no telemetry: colour alone is not trusted, so the fire-coloured
    flicker raises nothing, and the user is told once which classes are off and why."""
    monkeypatch.delenv("PATROL_MODELS", raising=False)
    out = tmp_path / "out"
    assert patrol.main(["watch", str(synthetic_files["video"]), "--out", str(out)]) == 0
    lines = [json.loads(x) for x in (out / "incidents.jsonl").read_text().splitlines()]
    assert not [x for x in lines if x["kind"] == "fire"]
    err = capsys.readouterr().err
    assert err.count("fire/smoke: off, no smoke/fire model") == 1
    assert "crowd: off" in err and "stopped_vehicle: off, sizes need metres" in err
    assert "PATROL_MODELS" in err


def test_altitude_gives_the_scale_for_size_based_classes(monkeypatch):
    """--altitude-m (or telemetry) turns the size-based classes back on."""
    monkeypatch.delenv("PATROL_MODELS", raising=False)
    pipe = IncidentPipeline(VisionConfig.model_validate({"geolocation": {"assumed_alt_m": 40.0}}))
    assert not [x for x in pipe.classes_off(with_telemetry=False) if x.startswith(("crowd", "stopped"))]
    assert patrol.main(["watch", "x.mp4", "--altitude-m", "-3"]) == 1


def test_corrupt_and_truncated_video_give_vision_errors(synthetic_files, tmp_path):
    """Garbage bytes fail at open; a cut-off file fails naming the truncation, after its frames."""
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 255, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(VisionError, match="junk.mp4"):
        list(FileSource(junk))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VisionError, match="empty"):
        FileSource(empty)
    # An AVI cut in half keeps its header (frame count) but loses its tail.
    avi = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(40):
        writer.write(np.full((120, 160, 3), i * 5, np.uint8))
    writer.release()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(avi.read_bytes()[: avi.stat().st_size // 2])
    got = []
    with pytest.raises(VisionError):
        for frame in FileSource(cut):
            got.append(frame)
    assert got, "frames before the cut are still delivered"
    assert patrol.main(["watch", str(junk), "--out", str(tmp_path / "o")]) == 1


def test_missing_and_garbage_telemetry_give_vision_errors(tmp_path):
    """A missing telemetry file, a non-JSON line and a missing field are named in the error."""
    with pytest.raises(VisionError, match="does not exist"):
        load_telemetry(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"time_s": 0, "lat": 32, "lon": 119.5, "alt_rel_m": 60}\n{oops\n')
    with pytest.raises(VisionError, match="bad.jsonl:2"):
        load_telemetry(bad)
    short = tmp_path / "short.csv"
    short.write_text("time_s,lat,lon\n0,32,119\n")
    with pytest.raises(VisionError, match="alt_rel_m"):
        load_telemetry(short)


def test_telemetry_interpolates_and_refuses_gaps():
    """Poses are interpolated (yaw across north), and a dropout longer than max_gap_s gives None."""
    a = Pose(0.0, 32.0, 119.58, 60.0, 70.0, yaw_deg=350.0)
    b = Pose(1.0, 32.0001, 119.58, 62.0, 72.0, yaw_deg=10.0)
    c = Pose(5.0, 32.0002, 119.58, 62.0, 72.0)
    tel = Telemetry([a, b, c], max_gap_s=1.5)
    mid = tel.pose_at(0.5)
    assert mid.alt_rel_m == pytest.approx(61.0) and mid.yaw_deg == pytest.approx(0.0, abs=1e-6)
    assert tel.pose_at(3.0) is None
    assert tel.pose_at(100.0) is None


def test_config_rejects_unknown_keys_by_name():
    """A typo in the config is refused with the key's name."""
    with pytest.raises(Exception, match="stationary_secs"):
        VisionConfig.model_validate({"stopped_vehicle": {"stationary_secs": 5}})


def test_bad_frame_and_bad_zone_give_vision_errors():
    """A frame that is not BGR uint8, or a zone with two vertices, is a VisionError."""
    pipe = IncidentPipeline(VisionConfig(), camera=CameraModel(640, 360, 82.0))
    with pytest.raises(VisionError, match="BGR"):
        pipe.process(np.zeros((10, 10), np.float32), 0.0)
    with pytest.raises(VisionError, match="3"):
        IncidentPipeline(VisionConfig(), restricted_zones=[[(32.0, 119.5), (32.1, 119.5)]])


def test_image_folder_source(tmp_path):
    """An image folder plays in name order; an unreadable image is named."""
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"f{i:03d}.png"), np.full((20, 30, 3), i, np.uint8))
    frames = list(ImageFolderSource(tmp_path, fps=5.0))
    assert [f.t_s for f in frames] == [0.0, 0.2, 0.4]
    (tmp_path / "f999.png").write_bytes(b"not a png")
    with pytest.raises(VisionError, match="f999.png"):
        list(ImageFolderSource(tmp_path))


def test_two_drones_over_one_fire_make_one_incident():
    """Two drones share a registry: the same fire seen by both is one NEW, with a grid id."""
    scenario = _fire_scenario(3.0)
    camera = CameraModel(640, 360, 82.0)
    registry = IncidentRegistry(VisionConfig().incidents)
    news = []
    for seed, (drone, centre) in enumerate((("d1", (0.0, 0.0)), ("d2", (8.0, -6.0)))):
        cam = SyntheticCamera(scenario.scene, camera, seed=seed)
        pipe = IncidentPipeline(VisionConfig().for_synthetic_camera(), camera=camera, drone_id=drone, registry=registry,
                                cell_lookup=lambda lat, lon: "G-0001")
        flight = HoverFlight(centre, alt_m=60.0, drone_id=drone)
        for i in range(90):
            t = i / 30
            pose = flight.pose(scenario.scene, t)
            news += [e for e in pipe.process(cam.render(pose, t), t, pose) if e.state == IncidentState.NEW]
    assert len(news) == 1 and news[0].incident.grid_id == "G-0001"
    assert len({r.id for r in registry.records}) == 1 and len(registry.records[0].keys) >= 2


def test_tlog_telemetry_is_read(tmp_path):
    """A MAVLink tlog (8-byte timestamp + packet) yields poses from GLOBAL_POSITION_INT + ATTITUDE."""
    import struct

    from pymavlink.dialects.v20 import ardupilotmega as mavlink

    link = mavlink.MAVLink(None, srcSystem=1, srcComponent=1)
    path = tmp_path / "flight.tlog"
    with path.open("wb") as fh:
        for i in range(5):
            t = 1_700_000_000.0 + i * 0.2
            att = link.attitude_encode(i * 200, 0.01, -0.02, 0.5, 0, 0, 0)
            pos = link.global_position_int_encode(i * 200, int(32.0 * 1e7) + i * 10, int(119.58 * 1e7), 70_000, 60_000,
                                                  100, 0, 0, 9000)
            for msg in (att, pos):
                fh.write(struct.pack(">Q", int(t * 1e6)) + msg.pack(link))
    tel = load_telemetry(path)
    assert len(tel) == 5
    pose = tel.pose_at(1_700_000_000.1)
    assert pose.alt_rel_m == pytest.approx(60.0) and pose.yaw_deg == pytest.approx(90.0)
    assert pose.lat == pytest.approx(32.0000005, abs=1e-7)


def test_silent_udp_stream_gives_vision_error_within_timeout(unused_port):
    """Opening a UDP stream nobody sends to fails with a VisionError naming it, not a hang."""
    from vision.sources import StreamSource

    url = f"udp://127.0.0.1:{unused_port}"
    with pytest.raises(VisionError, match="cannot open stream udp://127.0.0.1"):
        StreamSource(url, stall_timeout_s=1.0)
