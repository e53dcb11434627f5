"""Vision throughput: whole pipeline including decode, one core (cv2.setNumThreads(1), FFmpeg
decoding with one thread). Prints frames/s at 720p and 1080p and the synthetic camera's render
rate. Targets: 720p >= 120 frames/s, 1080p >= 60 frames/s.

    .venv/bin/python bench/vision_bench.py [--seconds 10]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402

from common.values import CameraModel  # noqa: E402
from sim.camera import SyntheticCamera  # noqa: E402
from sim.camera.scenarios import fires, write_synthetic_video  # noqa: E402
from vision import IncidentPipeline, VisionConfig  # noqa: E402
from vision.sources import FileSource  # noqa: E402
from vision.telemetry import load_telemetry  # noqa: E402


def bench_size(width: int, height: int, seconds: float, workdir: Path) -> None:
    camera = CameraModel(width, height, 82.0)
    scenario = fires()
    files = write_synthetic_video(scenario, workdir / f"{height}p", camera, duration_s=seconds)
    telemetry = load_telemetry(files["telemetry"])
    cfg = VisionConfig.model_validate({"camera": {"width_px": width, "height_px": height, "hfov_deg": 82.0}})
    # Decode alone.
    t0 = time.perf_counter()
    n_decode = sum(1 for _ in FileSource(files["video"], threads=1))
    decode_s = time.perf_counter() - t0
    # Decode + pipeline.
    # With the scene's road map, as the patrol runs it: the lane check for standing cars is on.
    pipe = IncidentPipeline(cfg, camera=camera, drone_id="bench", road_zones=scenario.scene.road_zones())
    events = 0
    t0 = time.perf_counter()
    n = 0
    for frame in FileSource(files["video"], threads=1):
        events += len(pipe.process(frame.image, frame.t_s, telemetry.pose_at(frame.t_s)))
        n += 1
    total_s = time.perf_counter() - t0
    print(f"{height}p: decode only {n_decode / decode_s:7.1f} frames/s | decode+pipeline {n / total_s:7.1f} frames/s "
          f"| pipeline alone {pipe.frames_per_s:7.1f} frames/s | {n} frames, {events} events")


def bench_render(width: int, height: int, frames: int = 150) -> None:
    scenario = fires()
    cam = SyntheticCamera(scenario.scene, CameraModel(width, height, 82.0))
    t0 = time.perf_counter()
    for i in range(frames):
        t = i / 30
        cam.render(scenario.flight.pose(scenario.scene, t), t)
    print(f"synthetic camera {height}p: {frames / (time.perf_counter() - t0):7.1f} frames/s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each test video (default 10)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    print(f"OpenCV {cv2.__version__}, cv2.setNumThreads(1), FFmpeg decode threads=1")
    with tempfile.TemporaryDirectory() as tmp:
        bench_size(1280, 720, args.seconds, Path(tmp))
        bench_size(1920, 1080, args.seconds, Path(tmp))
    bench_render(640, 360)
    bench_render(1280, 720)


if __name__ == "__main__":
    main()
