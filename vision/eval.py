"""`patrol eval CLIPS_DIR LABELS.tsv [--out DIR]`: how well the pipeline does on labelled footage.

Runs `IncidentPipeline` over every labelled clip and scores each alert (a NEW incident: what
sends an officer) against the labels:

- an alert is **true** when a labelled span of its kind (fire and smoke are one family: a fire
  alert under a smoke plume is a real fire) covers its time, `tolerance_s` either side; every
  other alert is **false** (`none` rows only document spans where nothing may be reported);
- a labelled span is **found** by the first true alert of its family raised within it, or
  raised before and still open then; its **time to first detection** is that alert's time
  minus the span's `start_s` (0 when raised before); a span with no such alert is **missed**.

Writes a table on stdout, `DIR/eval.json`, each alert's snapshot under `DIR/snapshots/` and
contact sheets of every false alert, `DIR/false_alerts.png` (30 a page, then
`false_alerts-2.png`...). Progress (clip i/n) on stderr.

Labels file (tab-separated; `#` lines and blank lines are skipped):

    file    kind    start_s end_s   [anything else: view, notes, source]
    besir_fire.mp4  fire    0   16.5    drone_oblique   flames the whole clip
    carPark.mp4     none    0   28.3    drone_nadir     parked cars: nothing to report
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common.values import IncidentState

from .sheets import contact_sheet
from .config import VisionConfig, load_config
from .errors import VisionError
from .pipeline import IncidentPipeline
from .sources import FileSource
from .telemetry import load_telemetry

LABEL_KINDS = ("fire", "smoke", "crowd", "stopped_vehicle", "intrusion", "none")
# Kinds that are one incident on the ground: an alert of one is true under a span of any other.
_FAMILY = {"fire": "fire", "smoke": "fire"}
VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".ts")
SHEET_TILES = 30  # false-alert snapshots per contact sheet page
POSE_SUFFIXES = (".poses.jsonl", ".poses.csv", ".tlog")  # next to a clip: its telemetry


def family(kind: str) -> str:
    return _FAMILY.get(kind, kind)


@dataclass(frozen=True)
class LabelSpan:
    """One labels-file row: in `clip`, `kind` is visible from start_s to end_s (or, for
    `none`, nothing may be reported there)."""

    clip: str
    kind: str
    start_s: float
    end_s: float
    line: int
    note: str = ""


def load_labels(path: str | Path) -> dict[str, list[LabelSpan]]:
    """Label spans by clip file name; a malformed row is a VisionError naming its line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise VisionError(f"cannot read labels file {path}: {exc.strerror}") from exc
    out: dict[str, list[LabelSpan]] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        cols = raw.split("\t")
        where = f"labels file {path} line {n}"
        if len(cols) < 4:
            raise VisionError(f"{where}: expected file<TAB>kind<TAB>start_s<TAB>end_s, got {len(cols)} "
                              f"tab-separated column(s): {raw.strip()[:60]!r}")
        clip, kind = cols[0].strip(), cols[1].strip()
        if not clip:
            raise VisionError(f"{where}: no file name")
        if kind not in LABEL_KINDS:
            raise VisionError(f"{where}: unknown kind {kind!r} (one of {', '.join(LABEL_KINDS)})")
        try:
            start_s, end_s = float(cols[2]), float(cols[3])
        except ValueError:
            raise VisionError(f"{where}: start_s and end_s must be seconds, got {cols[2]!r} and {cols[3]!r}") from None
        if not (math.isfinite(start_s) and math.isfinite(end_s)) or start_s < 0 or end_s < start_s:
            raise VisionError(f"{where}: span {start_s:g}-{end_s:g} s is not 0 <= start_s <= end_s")
        note = cols[5].strip() if len(cols) > 5 else ""
        out.setdefault(clip, []).append(LabelSpan(clip, kind, start_s, end_s, n, note))
    if not out:
        raise VisionError(f"labels file {path} holds no label rows")
    return out


@dataclass
class Alert:
    """A NEW incident the pipeline raised in a clip, and the verdict on it."""

    incident_id: str
    kind: str
    t_s: float
    confidence: float
    bbox_px: list | None
    end_s: float | None = None  # when the incident ended (None: still open)
    true: bool = False
    span_line: int | None = None  # the labels-file line of the span that makes it true
    snapshot: str | None = None


@dataclass
class ClassScore:
    alerts: int = 0
    true: int = 0
    false: int = 0
    labelled: int = 0
    found: int = 0
    missed: int = 0
    first_detection_s: list = field(default_factory=list)  # per found span, seconds after start_s
    false_per_hour: float = 0.0

    def add(self, other: "ClassScore") -> None:
        for k in ("alerts", "true", "false", "labelled", "found", "missed"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.first_detection_s += other.first_detection_s

    def as_dict(self) -> dict:
        d = asdict(self)
        d["first_detection_s"] = [round(v, 2) for v in self.first_detection_s]
        d["max_first_detection_s"] = round(max(self.first_detection_s), 2) if self.first_detection_s else None
        d["false_per_hour"] = round(self.false_per_hour, 1)
        return d


def score_clip(spans: list[LabelSpan], alerts: list[Alert], duration_s: float,
               tolerance_s: float) -> tuple[dict[str, ClassScore], list[dict]]:
    """Mark each alert true/false and score each class; returns (scores by kind, missed spans)."""
    scores: dict[str, ClassScore] = {}
    real = [s for s in spans if s.kind != "none"]
    for a in alerts:
        cover = next((s for s in real if family(s.kind) == family(a.kind)
                      and s.start_s - tolerance_s <= a.t_s <= s.end_s + tolerance_s), None)
        a.true, a.span_line = cover is not None, cover.line if cover else None
        sc = scores.setdefault(a.kind, ClassScore())
        sc.alerts += 1
        sc.true += a.true
        sc.false += not a.true
    missed = []
    for s in real:
        sc = scores.setdefault(s.kind, ClassScore())
        sc.labelled += 1
        # Raised within the span, or a true alert of its family raised before and still open
        # then (smoke reported at 2.5 s, its flames labelled from 9.5 s: the fire is known).
        hits = [a.t_s for a in alerts if family(a.kind) == family(s.kind) and a.true
                and a.t_s <= s.end_s + tolerance_s
                and (a.end_s is None or a.end_s >= s.start_s - tolerance_s)]
        if hits:
            sc.found += 1
            sc.first_detection_s.append(max(0.0, min(hits) - s.start_s))
        else:
            sc.missed += 1
            missed.append({"kind": s.kind, "start_s": s.start_s, "end_s": s.end_s, "line": s.line})
    hours = duration_s / 3600.0
    for sc in scores.values():
        sc.false_per_hour = sc.false / hours if hours > 0 else 0.0
    return scores, missed


def find_telemetry(clip: Path) -> Path | None:
    """`<stem>.poses.jsonl|.poses.csv|.tlog` beside the clip, if there is one."""
    for suffix in POSE_SUFFIXES:
        p = clip.with_name(clip.stem + suffix)
        if p.is_file():
            return p
    return None


@dataclass
class ClipRun:
    alerts: list[Alert]
    frames: int
    duration_s: float
    wall_s: float
    pipeline_frames_per_s: float
    pose: bool
    snapshots: dict[str, bytes]
    error: str | None = None  # the video failed part-way (or at once): scored on what was seen


def run_clip(clip: Path, config: VisionConfig, on_progress: Callable[[int, float], None] | None = None) -> ClipRun:
    """The pipeline over one clip (with its telemetry when one lies beside it); every NEW incident."""
    tel_path = find_telemetry(clip)
    telemetry = None
    if tel_path is not None:
        g = config.geolocation
        telemetry = load_telemetry(tel_path, max_gap_s=g.max_telemetry_gap_s, offset_s=g.telemetry_offset_s)
    try:
        source = FileSource(clip)
    except VisionError as exc:
        return ClipRun([], 0, 0.0, 0.0, 0.0, telemetry is not None, {}, str(exc))
    pipe = IncidentPipeline(config, camera=config.camera.model(), drone_id="")
    alerts: list[Alert] = []
    snapshots: dict[str, bytes] = {}
    frames, t_s = 0, 0.0
    started = time.perf_counter()

    def collect(events) -> None:
        for ev in events:
            inc = ev.incident
            if ev.state == IncidentState.NEW:
                alerts.append(Alert(inc.id, inc.kind.value, round(t_s, 2), round(inc.confidence, 3),
                                    list(inc.bbox_px) if inc.bbox_px else None))
                if inc.snapshot_jpeg:
                    snapshots[inc.id] = inc.snapshot_jpeg
            elif ev.state == IncidentState.END:
                for a in alerts:
                    if a.incident_id == inc.id and a.end_s is None:
                        a.end_s = round(t_s, 2)

    error = None
    try:
        for frame in source:
            t_s = frame.t_s
            collect(pipe.process(frame.image, t_s, telemetry.pose_at(t_s) if telemetry else None))
            frames += 1
            if on_progress and frames % 100 == 0:
                on_progress(frames, t_s)
    except VisionError as exc:  # a truncated or corrupt tail: what was seen before it still counts
        error = str(exc)
    collect(pipe.close(t_s))
    wall_s = time.perf_counter() - started
    return ClipRun(alerts, frames, frames / source.fps, wall_s, pipe.frames_per_s, telemetry is not None, snapshots,
                   error)


def _fmt_t(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def format_table(result: dict) -> str:
    """The per-clip, per-class table and the totals, as printed on stdout."""
    head = f"{'clip':34} {'class':16} {'alerts':>6} {'true':>5} {'false':>5} {'spans':>5} {'missed':>6} " \
           f"{'1st det s':>9} {'false/h':>8} {'frames/s':>8}"
    lines = [head, "-" * len(head)]
    for c in result["clips"]:
        kinds = sorted(c["classes"]) or ["-"]
        for i, kind in enumerate(kinds):
            s = c["classes"].get(kind)
            name = c["clip"][:34] if i == 0 else ""
            fps = f"{c['frames_per_s']:.0f}" if i == 0 else ""
            if s is None:
                lines.append(f"{name:34} {'(nothing)':16} {0:6} {0:5} {0:5} {0:5} {0:6} {'-':>9} {0:8.0f} {fps:>8}")
                continue
            lines.append(f"{name:34} {kind:16} {s['alerts']:6} {s['true']:5} {s['false']:5} {s['labelled']:5} "
                         f"{s['missed']:6} {_fmt_t(s['max_first_detection_s']):>9} {s['false_per_hour']:8.0f} {fps:>8}")
    lines.append("-" * len(head))
    t = result["totals"]
    for kind, s in sorted(result["classes"].items()):
        lines.append(f"{'ALL':34} {kind:16} {s['alerts']:6} {s['true']:5} {s['false']:5} {s['labelled']:5} "
                     f"{s['missed']:6} {_fmt_t(s['max_first_detection_s']):>9} {s['false_per_hour']:8.0f}")
    lines.append(f"{t['clips']} clips, {t['hours'] * 3600:.0f} s of video: {t['alerts']} alerts, {t['false']} false "
                 f"({t['false_per_hour']:.0f}/h), {t['missed']} of {t['labelled']} labelled spans missed, "
                 f"{t['calm_clips_with_alerts']} of {t['calm_clips']} calm clips with an alert, "
                 f"{t['frames_per_s']:.0f} frames/s")
    return "\n".join(lines)


def evaluate(clips_dir: str | Path, labels_path: str | Path, out_dir: str | Path, config: VisionConfig,
             tolerance_s: float = 1.0, only: Iterable[str] = (), progress=None) -> dict:
    """Score every labelled clip found in clips_dir; writes eval.json, snapshots and the contact
    sheet of false alerts into out_dir and returns what eval.json holds."""
    progress = progress or sys.stderr
    clips_dir, out_dir = Path(clips_dir), Path(out_dir)
    if not clips_dir.is_dir():
        raise VisionError(f"clips folder {clips_dir} does not exist")
    labels = load_labels(labels_path)
    only = set(only)
    if only - set(labels):
        raise VisionError(f"--clip {', '.join(sorted(only - set(labels)))}: not in labels file {labels_path}")
    names = [n for n in labels if not only or n in only]
    missing = [n for n in names if not (clips_dir / n).is_file()]
    for n in missing:
        print(f"eval: {n} (labels line {labels[n][0].line}) is not in {clips_dir}: skipped", file=progress)
    unlabelled = sorted(p.name for p in clips_dir.iterdir()
                        if p.suffix.lower() in VIDEO_SUFFIXES and p.name not in labels)
    if unlabelled and not only:
        print(f"eval: no labels for {', '.join(unlabelled)}: skipped", file=progress)
    names = [n for n in names if n not in missing]
    if not names:
        raise VisionError(f"none of the labelled clips is in {clips_dir}")
    (out_dir / "snapshots").mkdir(parents=True, exist_ok=True)
    clips_out: list[dict] = []
    totals: dict[str, ClassScore] = {}
    false_sheet: dict[str, tuple[bytes, str]] = {}
    frames_all, wall_all, seconds_all = 0, 0.0, 0.0
    for i, name in enumerate(names, 1):
        print(f"clip {i}/{len(names)}: {name}", file=progress, flush=True)
        run = run_clip(clips_dir / name, config,
                       lambda f, t: print(f"  clip {i}/{len(names)} {name}: frame {f} t={t:.1f}s", file=progress))
        scores, missed = score_clip(labels[name], run.alerts, run.duration_s, tolerance_s)
        stem = Path(name).stem
        for a in run.alerts:
            jpeg = run.snapshots.get(a.incident_id)
            if jpeg:
                snap = out_dir / "snapshots" / f"{stem}-{a.incident_id}.jpg"
                snap.write_bytes(jpeg)
                a.snapshot = str(snap.relative_to(out_dir))
                if not a.true:
                    false_sheet[f"{stem}-{a.incident_id}"] = (jpeg, f"FALSE {a.kind} {stem[:22]} t={a.t_s:.1f}s")
        for kind, sc in scores.items():
            totals.setdefault(kind, ClassScore()).add(sc)
        fps = run.frames / run.wall_s if run.wall_s else 0.0
        frames_all, wall_all, seconds_all = frames_all + run.frames, wall_all + run.wall_s, seconds_all + run.duration_s
        calm = all(s.kind == "none" for s in labels[name])
        clips_out.append({"clip": name, "error": run.error, "calm": calm, "pose": run.pose,
                          "duration_s": round(run.duration_s, 2),
                          "frames": run.frames, "frames_per_s": round(fps, 1),
                          "pipeline_frames_per_s": round(run.pipeline_frames_per_s, 1),
                          "classes": {k: v.as_dict() for k, v in scores.items()},
                          "alerts": [asdict(a) for a in run.alerts], "missed": missed})
        n_false = sum(not a.true for a in run.alerts)
        if run.error:
            print(f"clip {i}/{len(names)}: {name}: {run.error}", file=progress, flush=True)
        print(f"clip {i}/{len(names)}: {name}: {len(run.alerts)} alerts ({n_false} false), {len(missed)} missed, "
              f"{fps:.0f} frames/s", file=progress, flush=True)
    hours = seconds_all / 3600.0
    for sc in totals.values():
        sc.false_per_hour = sc.false / hours if hours else 0.0
    n_false = sum(s.false for s in totals.values())
    calm_clips = [c for c in clips_out if c["calm"]]
    result = {
        "labels": str(labels_path), "clips_dir": str(clips_dir), "tolerance_s": tolerance_s,
        "skipped": missing, "unlabelled": unlabelled,
        "errors": {c["clip"]: c["error"] for c in clips_out if c["error"]},
        "clips": clips_out,
        "classes": {k: v.as_dict() for k, v in sorted(totals.items())},
        "totals": {"clips": len(clips_out), "hours": round(hours, 4), "frames": frames_all,
                   "frames_per_s": round(frames_all / wall_all, 1) if wall_all else 0.0,
                   "alerts": sum(s.alerts for s in totals.values()), "false": n_false,
                   "false_per_hour": round(n_false / hours, 1) if hours else 0.0,
                   "labelled": sum(s.labelled for s in totals.values()),
                   "missed": sum(s.missed for s in totals.values()),
                   "calm_clips": len(calm_clips),
                   "calm_clips_with_alerts": sum(1 for c in calm_clips if c["alerts"])},
    }
    result["false_alert_sheets"] = write_false_alert_sheets(false_sheet, out_dir)
    (out_dir / "eval.json").write_text(json.dumps(result, indent=2))
    return result


def write_false_alert_sheets(tiles: dict[str, tuple[bytes, str]], out_dir: Path) -> list[str]:
    """Contact sheets of the false alerts' snapshots, SHEET_TILES a page: false_alerts.png,
    false_alerts-2.png, ... (hundreds of false alerts in one PNG would not open)."""
    for old in out_dir.glob("false_alerts*.png"):
        old.unlink()
    items = list(tiles.items())
    names = []
    for page, i in enumerate(range(0, max(len(items), 1), SHEET_TILES), 1):
        name = "false_alerts.png" if page == 1 else f"false_alerts-{page}.png"
        contact_sheet(dict(items[i:i + SHEET_TILES]), out_dir / name)
        names.append(name)
    return names


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="score the vision pipeline on labelled clips (true/false/missed alerts)")
    p.add_argument("clips", help="folder of video clips")
    p.add_argument("labels", help="labels file (TSV: file, kind, start_s, end_s, ...; see docs/vision.md)")
    p.add_argument("--out", default="eval-out", help="output directory (default eval-out)")
    p.add_argument("--config", help="vision config YAML (sections of VisionConfig)")
    p.add_argument("--models", metavar="DIR", help="models directory (sets PATROL_MODELS for the pipeline)")
    p.add_argument("--tolerance-s", type=float, default=1.0,
                   help="an alert this close outside a labelled span still counts as true (default 1)")
    p.add_argument("--clip", action="append", default=[], metavar="FILE",
                   help="only this labelled clip (repeatable; default every labelled clip in the folder)")
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    try:
        if args.tolerance_s < 0:
            raise VisionError(f"--tolerance-s {args.tolerance_s}: must be >= 0")
        if args.models:
            if not Path(args.models).is_dir():
                raise VisionError(f"--models {args.models}: no such directory")
            os.environ["PATROL_MODELS"] = str(Path(args.models).resolve())
        config = load_config(args.config) if args.config else VisionConfig()
        result = evaluate(args.clips, args.labels, args.out, config, args.tolerance_s, args.clip)
    except VisionError as exc:
        print(f"patrol eval: {exc}", file=sys.stderr)
        return 1
    print(format_table(result))
    for clip, error in result["errors"].items():
        print(f"patrol eval: {clip}: {error}", file=sys.stderr)
    sheets = result["false_alert_sheets"]
    print(f"-> {args.out}/eval.json, {args.out}/{sheets[0]}" + (f" (+{len(sheets) - 1} more pages)" if len(sheets) > 1 else ""))
    return 1 if result["errors"] else 0
