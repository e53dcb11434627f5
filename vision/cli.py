"""`patrol watch SOURCE [--telemetry FILE] [--camera FILE] [--out DIR]`: incidents in a video.

Writes DIR/incidents.jsonl (one line per incident state change), DIR/snapshots/<id>.jpg and a
contact sheet DIR/incidents.png; progress and frames/s go to stderr. `--synthetic SCENARIO`
first renders a synthetic video + telemetry (sim.camera) into DIR and then watches it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common.values import IncidentEvent

from .config import VisionConfig, load_camera, load_config
from .errors import VisionError
from .eval import register as register_eval
from .pipeline import IncidentPipeline
from .sheets import contact_sheet
from .sources import open_source
from .telemetry import Telemetry, load_telemetry


def register(subparsers) -> None:
    p = subparsers.add_parser("watch", help="find incidents in a video, stream or image folder")
    p.add_argument("source", nargs="?", help="video file, rtsp://, udp://, or a folder of images")
    p.add_argument("--telemetry", help="pose track (.jsonl, .csv or .tlog) for lat/lon of incidents")
    p.add_argument("--camera", help="camera file (YAML/JSON: width_px, height_px, hfov_deg, gimbal_pitch_deg)")
    p.add_argument("--config", help="vision config YAML (sections of VisionConfig)")
    p.add_argument("--models", metavar="DIR", help="directory of the ONNX detectors (default: config models.dir or "
                                                   "env PATROL_MODELS); see docs/vision.md for the files")
    p.add_argument("--altitude-m", type=float, metavar="M",
                   help="camera height above ground when there is no telemetry: gives the scale that sizing "
                        "people and vehicles from motion needs")
    p.add_argument("--zone", action="append", default=[], metavar="LAT,LON;LAT,LON;...",
                   help="restricted zone polygon (repeatable)")
    p.add_argument("--out", default="watch-out", help="output directory (default watch-out)")
    p.add_argument("--drone-id", default="", help="drone id stamped on incidents")
    p.add_argument("--fps", type=float, default=10.0, help="frame rate of an image folder (default 10)")
    p.add_argument("--synthetic", metavar="SCENARIO",
                   help="render a synthetic scenario (calm, fires, crowds, stopped_vehicles, intrusions) and watch it")
    worker = p.add_argument_group(
        "as a drone's vision worker (with --broker): detections go to the controller over MQTT, not to --out; "
        "see docs/deploy.md")
    from dispatch.cli import add_broker_args

    add_broker_args(worker)
    worker.add_argument("--pose", metavar="mavlink:URL|mqtt|none",
                        help="live pose: the drone's MAVLink stream (mavlink:udpin:0.0.0.0:14551, mavlink:tcp:HOST:5760) "
                             "or the controller's patrol/drones/ID/state (mqtt, the default with --broker)")
    worker.add_argument("--vision-fps", type=float, default=5.0, metavar="N",
                        help="frames looked at per second; the newest frame each time, never a backlog (default 5)")
    worker.add_argument("--queue", type=int, default=1000, metavar="N",
                        help="detections kept while the broker is unreachable (default 1000; updates dropped first)")
    worker.add_argument("--status-interval", type=float, default=5.0, metavar="S",
                        help="seconds between retained status messages (default 5)")
    p.set_defaults(func=run_watch)
    register_eval(subparsers)


def _parse_zone(text: str) -> list[tuple[float, float]]:
    try:
        pts = [tuple(float(v) for v in pair.split(",")) for pair in text.split(";") if pair.strip()]
    except ValueError as exc:
        raise VisionError(f"--zone {text!r}: expected LAT,LON;LAT,LON;... ") from exc
    if len(pts) < 3 or any(len(p) != 2 for p in pts):
        raise VisionError(f"--zone {text!r}: a zone needs at least 3 LAT,LON points")
    return pts  # type: ignore[return-value]


def event_to_json(ev: IncidentEvent, snapshot_path: str | None = None) -> dict:
    inc = ev.incident
    return {"state": ev.state.value, "id": inc.id, "kind": inc.kind.value, "confidence": inc.confidence,
            "first_seen_s": round(inc.first_seen_s, 3), "last_seen_s": round(inc.last_seen_s, 3), "lat": inc.lat,
            "lon": inc.lon, "error_m": inc.error_m, "drone_id": inc.drone_id, "grid_id": inc.grid_id,
            "bbox_px": list(inc.bbox_px) if inc.bbox_px else None, "snapshot": snapshot_path}


def watch(source, out_dir: Path, telemetry: Telemetry | None, config: VisionConfig, zones, drone_id: str = "",
          progress=None) -> int:
    """Run the pipeline over a source; returns the number of incidents. Output is flushed per
    event, so incidents already found survive a corrupt tail of the video."""
    progress = progress or sys.stderr
    out_dir.mkdir(parents=True, exist_ok=True)
    snaps_dir = out_dir / "snapshots"
    snaps_dir.mkdir(exist_ok=True)
    pipe = IncidentPipeline(config, camera=config.camera.model(), drone_id=drone_id, restricted_zones=zones)
    for line in pipe.classes_off(with_telemetry=telemetry is not None):
        print(f"note: {line}", file=progress)
    best: dict[str, tuple[bytes, str]] = {}
    started = time.perf_counter()
    last_report = started
    t_s = 0.0
    frames = 0
    with (out_dir / "incidents.jsonl").open("w") as fh:
        def write(events):
            for ev in events:
                inc = ev.incident
                snap = None
                if inc.snapshot_jpeg:
                    snap_path = snaps_dir / f"{inc.id}.jpg"
                    snap_path.write_bytes(inc.snapshot_jpeg)
                    snap = str(snap_path.relative_to(out_dir))
                    best[inc.id] = (inc.snapshot_jpeg, f"{inc.id} {inc.kind.value} {inc.confidence:.2f}")
                fh.write(json.dumps(event_to_json(ev, snap)) + "\n")
                fh.flush()
                print(f"  {ev.state.value:6} {inc.id} {inc.kind.value} t={inc.last_seen_s:.2f}s"
                      + (f" at {inc.lat:.6f},{inc.lon:.6f} ±{inc.error_m:.0f} m" if inc.lat is not None else ""),
                      file=progress)

        try:
            for frame in source:
                t_s = frame.t_s
                pose = frame.pose or (telemetry.pose_at(t_s) if telemetry else None)
                write(pipe.process(frame.image, t_s, pose))
                frames += 1
                now = time.perf_counter()
                if now - last_report >= 1.0:
                    last_report = now
                    print(f"frame {frames} t={t_s:.1f}s {frames / (now - started):.0f} frames/s "
                          f"(pipeline {pipe.frames_per_s:.0f} frames/s)", file=progress)
        finally:
            write(pipe.close(t_s))
            contact_sheet(best, out_dir / "incidents.png")
            elapsed = time.perf_counter() - started
            print(f"{frames} frames in {elapsed:.1f} s ({frames / elapsed if elapsed else 0:.0f} frames/s), "
                  f"{len(best)} incidents -> {out_dir}", file=progress)
    return len(best)


def run_watch(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config) if args.config else VisionConfig()
        if args.camera:
            config = config.model_copy(update={"camera": load_camera(args.camera)})
        if args.models:
            config = config.model_copy(update={"models": config.models.model_copy(update={"dir": Path(args.models)})})
        if args.altitude_m is not None:
            if not args.altitude_m > 0:
                raise VisionError(f"--altitude-m {args.altitude_m}: must be above 0")
            config = config.model_copy(update={"geolocation": config.geolocation.model_copy(
                update={"assumed_alt_m": args.altitude_m})})
        zones = [_parse_zone(z) for z in args.zone]
        out_dir = Path(args.out)
        source_spec, telemetry_path = args.source, args.telemetry
        if args.synthetic:
            from sim.camera.scenarios import SCENARIOS, write_synthetic_video
            if args.synthetic not in SCENARIOS:
                raise VisionError(f"--synthetic {args.synthetic!r}: choose one of {', '.join(SCENARIOS)}")
            scenario = SCENARIOS[args.synthetic]()
            print(f"rendering synthetic scenario {args.synthetic} ({scenario.duration_s:.0f} s)...", file=sys.stderr)
            files = write_synthetic_video(scenario, out_dir)
            source_spec, telemetry_path = str(files["video"]), str(files["telemetry"])
            zones += [list(z) for z in scenario.scene.restricted_zones]
            config = config.model_copy(update={"camera": config.camera.model_copy(
                update={"width_px": 1280, "height_px": 720, "hfov_deg": 82.0})}).for_synthetic_camera()
        if not source_spec:
            raise VisionError("give a SOURCE (video file, stream URL or image folder) or --synthetic SCENARIO")
        if args.broker:
            return run_worker(args, source_spec, config, zones)
        if args.pose:
            raise VisionError("--pose is for a vision worker: give --broker URL too (or --telemetry FILE for a recording)")
        telemetry = None
        if telemetry_path:
            g = config.geolocation
            telemetry = load_telemetry(telemetry_path, max_gap_s=g.max_telemetry_gap_s, offset_s=g.telemetry_offset_s)
        else:
            print("no --telemetry: incidents will carry pixel boxes but no lat/lon", file=sys.stderr)
        if args.models and not Path(args.models).is_dir():
            raise VisionError(f"--models {args.models}: not a directory")
        source = open_source(source_spec, fps=args.fps)
        watch(source, out_dir, telemetry, config, zones, drone_id=args.drone_id)
        return 0
    except VisionError as exc:
        print(f"patrol watch: {exc}", file=sys.stderr)
        return 1


def run_worker(args: argparse.Namespace, source_spec: str, config: VisionConfig, zones) -> int:
    """`patrol watch SOURCE --broker URL --drone-id D [--pose ...]`: the drone's vision worker
    (runloop/worker.py) until SIGINT/SIGTERM or the end of a recording."""
    import asyncio
    import signal

    from dispatch.cli import broker_from_args
    from dispatch.errors import DispatchError
    from dispatch.topics import check_id
    from runloop.worker import VisionWorker, WorkerSettings, parse_pose_arg

    if args.telemetry:
        raise VisionError("a vision worker takes its pose live (--pose); --telemetry is for watching a recording")
    if not args.drone_id:
        raise VisionError("a vision worker needs --drone-id (the drone whose video this is)")
    if not args.vision_fps > 0:
        raise VisionError(f"--vision-fps {args.vision_fps}: must be above 0")
    try:
        check_id(args.drone_id, "--drone-id")
        broker = broker_from_args(args)
        pose = parse_pose_arg(args.pose or "mqtt", args.drone_id)
        settings = WorkerSettings(fps=args.vision_fps, outbox_max=args.queue, status_interval_s=args.status_interval,
                                  topic_prefix=args.topic_prefix or "patrol")
        worker = VisionWorker(source_spec, broker, args.drone_id, pose, config, settings, zones=zones,
                              progress=sys.stderr)
    except (DispatchError, ValueError) as exc:
        raise VisionError(str(exc)) from exc
    for line in worker.pipeline.classes_off(with_telemetry=pose.name != "none"):
        print(f"note: {line}", file=sys.stderr)
    print(f"{args.drone_id}: vision worker on {broker.url} (pose: {args.pose or 'mqtt'}); "
          f"status on {worker.topics.worker_status(args.drone_id)}", file=sys.stderr, flush=True)

    async def serve() -> str:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await worker.run(stop)

    outcome = asyncio.run(serve())
    if outcome == "failed":
        raise VisionError(worker.last_error or "the video failed")
    return 0
