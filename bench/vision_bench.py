"""Vision throughput at 720p: the whole pipeline (decode + IncidentPipeline, with the learned
detectors when a models directory is available) on one core, with OpenCV's 2 threads, and as two
drones watched in 2 processes. Goal: >= 30 frames/s on one core (one drone at 30 frames/s in real
time), >= 60 frames/s with both cores.

    .venv/bin/python bench/vision_bench.py [--seconds 10] [--models DIR] [--clip VIDEO]

Models: --models, else $PATROL_MODELS, else ../shared/models beside the repo; the directory is
handed to the pipeline as PATROL_MODELS. Without one the figures are of the classical pipeline
alone, and the output says so. Clips: a synthetic 720p patrol over fires (with telemetry), plus
a real clip (--clip, default ../shared/footage/jetyey_traffic.mp4 when present) scaled to 720p
and watched without a pose.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402

from common.values import CameraModel  # noqa: E402
from sim.camera.scenarios import fires, write_synthetic_video  # noqa: E402

WIDTH, HEIGHT = 1280, 720
DEFAULT_CLIP = ROOT.parent / "shared" / "footage" / "jetyey_traffic.mp4"


def _models_dir(arg: str | None) -> Path | None:
    for candidate in (arg, os.environ.get("PATROL_MODELS"), str(ROOT.parent / "shared" / "models")):
        if candidate and Path(candidate).is_dir() and any(Path(candidate).glob("*.onnx")):
            return Path(candidate).resolve()
    return None


def _to_720p(src: Path, dst: Path, seconds: float) -> Path:
    """The first `seconds` of a clip re-encoded at 1280x720 (so every clip is benched at 720p)."""
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, (WIDTH, HEIGHT))
    for _ in range(int(seconds * fps)):
        ok, frame = cap.read()
        if not ok:
            break
        out.write(cv2.resize(frame, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA))
    cap.release()
    out.release()
    return dst


def watch_clip(video: str, telemetry: str | None, cv_threads: int) -> tuple[int, float, float]:
    """Decode + pipeline over a clip: (frames, wall seconds, CPU seconds of this process). Runs in a
    fresh process for the multi-process figures, so everything is imported here."""
    cv2.setNumThreads(cv_threads)
    logging.getLogger("vision").setLevel(logging.ERROR)  # "no telemetry" is expected for real clips
    from vision import IncidentPipeline, VisionConfig
    from vision.sources import FileSource
    from vision.telemetry import load_telemetry

    tel = load_telemetry(telemetry) if telemetry else None
    cfg = VisionConfig.model_validate({"camera": {"width_px": WIDTH, "height_px": HEIGHT, "hfov_deg": 82.0}})
    # With the scene's road map when there is a pose, as the patrol runs it (the lane check is on).
    roads = fires().scene.road_zones() if tel else None
    pipe = IncidentPipeline(cfg, camera=CameraModel(WIDTH, HEIGHT, 82.0), drone_id="bench", road_zones=roads)
    n = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for frame in FileSource(video, threads=cv_threads):
        pipe.process(frame.image, frame.t_s, tel.pose_at(frame.t_s) if tel else None)
        n += 1
    return n, time.perf_counter() - t0, time.process_time() - c0


def _watch_star(args):
    return watch_clip(*args)


def bench_clip(name: str, video: Path, telemetry: Path | None) -> dict[str, float]:
    tel = str(telemetry) if telemetry else None
    n, wall, cpu = watch_clip(str(video), tel, 1)
    one = n / wall
    per_cpu_s = n / cpu  # what one free core does: the wall figures suffer when the machine is shared
    n2, wall2, _ = watch_clip(str(video), tel, 2)
    two_threads = n2 / wall2
    # Two drones, one process each (one OpenCV thread each), at the same time.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        pool.map(_watch_star, [(str(video), tel, 1)] * 2, chunksize=1)  # warm-up: imports, model loading
        t0 = time.perf_counter()
        results = pool.map(_watch_star, [(str(video), tel, 1)] * 2, chunksize=1)
        wall_p = time.perf_counter() - t0
    two_procs = sum(r[0] for r in results) / wall_p
    print(f"{name:30} 1 thread {one:6.1f} ({per_cpu_s:6.1f} per CPU-second) | 2 threads {two_threads:6.1f} | "
          f"2 drones in 2 processes {two_procs:6.1f} frames/s  [{n} frames, load {os.getloadavg()[0]:.1f}]")
    return {"one_core": one, "per_cpu_s": per_cpu_s, "two_threads": two_threads, "two_processes": two_procs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each test clip (default 10)")
    ap.add_argument("--models", help="models directory (default $PATROL_MODELS, else ../shared/models)")
    ap.add_argument("--clip", default=str(DEFAULT_CLIP), help="a real clip, scaled to 720p")
    args = ap.parse_args()
    models = _models_dir(args.models)
    if models and importlib.util.find_spec("vision.models") is None:
        print(f"models: {models} found, but this vision package has no learned detectors: classical pipeline only")
    elif models:
        os.environ["PATROL_MODELS"] = str(models)  # inherited by the worker processes
        print(f"models: {models} (PATROL_MODELS); the pipeline runs the learned detectors it finds there")
    else:
        os.environ.pop("PATROL_MODELS", None)
        print("models: none found (--models, $PATROL_MODELS, ../shared/models): classical pipeline only")
    print(f"OpenCV {cv2.__version__}, {os.cpu_count()} CPUs; frames/s of decode + pipeline at {WIDTH}x{HEIGHT}; "
          f"goal >= 30 on one core, >= 60 with two")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = write_synthetic_video(fires(), Path(tmp) / "synthetic", CameraModel(WIDTH, HEIGHT, 82.0),
                                      duration_s=args.seconds)
        rows["synthetic fires (with pose)"] = bench_clip("synthetic fires (with pose)", files["video"],
                                                         files["telemetry"])
        clip = Path(args.clip)
        if clip.is_file():
            scaled = _to_720p(clip, Path(tmp) / "real720.mp4", args.seconds)
            rows[f"{clip.name} (no pose)"] = bench_clip(f"{clip.name} (no pose)", scaled, None)
        else:
            print(f"real clip {clip} not found: synthetic only")
    print("(frames per CPU-second: frames / CPU time of the one-thread run, what a free core would do)")
    worst_one = min(r["one_core"] for r in rows.values())
    worst_two = min(max(r["two_threads"], r["two_processes"]) for r in rows.values())
    print(f"goal one core >= 30: {'met' if worst_one >= 30 else 'NOT met'} ({worst_one:.1f}); "
          f"both cores >= 60: {'met' if worst_two >= 60 else 'NOT met'} ({worst_two:.1f})")


if __name__ == "__main__":
    main()
