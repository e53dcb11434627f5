"""Telemetry: Pose streams from JSONL, CSV or MAVLink tlog, aligned to frames by time.

`Telemetry.pose_at(t_s)` interpolates linearly between the two samples around t_s (yaw and
heading along the short arc) and returns None when t_s is outside the track or the samples
around it are further apart than `max_gap_s` (a telemetry dropout is not papered over).
"""
from __future__ import annotations

import bisect
import csv
import json
import math
from dataclasses import fields, replace
from pathlib import Path

from common.values import Pose

from .errors import VisionError

_REQUIRED = ("time_s", "lat", "lon", "alt_rel_m")
_POSE_FIELDS = {f.name for f in fields(Pose)}


def _pose_from_mapping(row: dict, where: str) -> Pose:
    missing = [k for k in _REQUIRED if row.get(k) in (None, "")]
    if missing:
        raise VisionError(f"{where}: missing {', '.join(missing)}")
    kwargs = {}
    for key, value in row.items():
        if key not in _POSE_FIELDS or value in (None, ""):
            continue
        if key == "drone_id":
            kwargs[key] = str(value)
            continue
        try:
            kwargs[key] = float(value)
        except (TypeError, ValueError) as exc:
            raise VisionError(f"{where}: {key}={value!r} is not a number") from exc
    kwargs.setdefault("alt_msl_m", kwargs["alt_rel_m"])
    if not (-90 <= kwargs["lat"] <= 90 and -180 <= kwargs["lon"] <= 180):
        raise VisionError(f"{where}: lat/lon {kwargs['lat']}, {kwargs['lon']} out of range")
    return Pose(**kwargs)


def _lerp_angle(a: float, b: float, f: float) -> float:
    d = (b - a + 180.0) % 360.0 - 180.0
    return (a + f * d) % 360.0


class Telemetry:
    """A time-sorted Pose track with interpolation."""

    def __init__(self, poses: list[Pose], max_gap_s: float = 1.0, offset_s: float = 0.0) -> None:
        if not poses:
            raise VisionError("telemetry holds no poses")
        self.poses = sorted(poses, key=lambda p: p.time_s)
        self.times = [p.time_s for p in self.poses]
        self.max_gap_s = max_gap_s
        self.offset_s = offset_s

    def __len__(self) -> int:
        return len(self.poses)

    @property
    def span_s(self) -> tuple[float, float]:
        return self.times[0], self.times[-1]

    def pose_at(self, t_s: float) -> Pose | None:
        t = t_s + self.offset_s
        i = bisect.bisect_left(self.times, t)
        if i < len(self.times) and self.times[i] == t:
            return self.poses[i]
        if i == 0 or i == len(self.times):
            edge = self.poses[0] if i == 0 else self.poses[-1]
            return edge if abs(edge.time_s - t) <= self.max_gap_s / 2 else None
        a, b = self.poses[i - 1], self.poses[i]
        if b.time_s - a.time_s > self.max_gap_s:
            return None
        f = (t - a.time_s) / (b.time_s - a.time_s)

        def lin(x: float, y: float) -> float:
            return x + f * (y - x)

        return replace(a, time_s=t, lat=lin(a.lat, b.lat), lon=lin(a.lon, b.lon), alt_rel_m=lin(a.alt_rel_m, b.alt_rel_m),
                       alt_msl_m=lin(a.alt_msl_m, b.alt_msl_m), roll_deg=lin(a.roll_deg, b.roll_deg),
                       pitch_deg=lin(a.pitch_deg, b.pitch_deg), yaw_deg=_lerp_angle(a.yaw_deg, b.yaw_deg, f),
                       groundspeed_m_s=lin(a.groundspeed_m_s, b.groundspeed_m_s),
                       heading_deg=_lerp_angle(a.heading_deg, b.heading_deg, f))


def read_jsonl(path: Path) -> list[Pose]:
    poses = []
    with path.open() as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise VisionError(f"{path}:{lineno}: not JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise VisionError(f"{path}:{lineno}: expected a JSON object with pose fields")
            poses.append(_pose_from_mapping(row, f"{path}:{lineno}"))
    return poses


def read_csv(path: Path) -> list[Pose]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "time_s" not in reader.fieldnames:
            raise VisionError(f"{path}: CSV needs a header with {', '.join(_REQUIRED)}")
        return [_pose_from_mapping(row, f"{path}:{i + 2}") for i, row in enumerate(reader)]


def read_tlog(path: Path) -> list[Pose]:
    """GLOBAL_POSITION_INT for position, the latest ATTITUDE for angles; time is the log stamp."""
    try:
        from pymavlink import mavutil
    except ImportError as exc:  # pragma: no cover - pymavlink is a project dependency
        raise VisionError("reading a tlog needs pymavlink") from exc
    try:
        mlog = mavutil.mavlink_connection(str(path), dialect="ardupilotmega")
    except Exception as exc:
        raise VisionError(f"cannot open tlog {path}: {exc}") from exc
    poses: list[Pose] = []
    roll = pitch = 0.0
    while True:
        try:
            msg = mlog.recv_match(type=["GLOBAL_POSITION_INT", "ATTITUDE"])
        except Exception as exc:
            raise VisionError(f"tlog {path} is corrupt after {len(poses)} poses: {exc}") from exc
        if msg is None:
            break
        if msg.get_type() == "ATTITUDE":
            roll, pitch = math.degrees(msg.roll), math.degrees(msg.pitch)
            continue
        poses.append(pose_from_mavlink(msg, roll, pitch, float(getattr(msg, "_timestamp", 0.0))))
    return poses


def pose_from_mavlink(position, roll_deg: float, pitch_deg: float, time_s: float, drone_id: str = "") -> Pose:
    """A Pose from a MAVLink GLOBAL_POSITION_INT (position, heading, velocity) and the roll and
    pitch of the latest ATTITUDE; used for tlogs and for a live MAVLink stream alike."""
    hdg = position.hdg / 100.0 if position.hdg != 65535 else 0.0
    return Pose(time_s=time_s, lat=position.lat / 1e7, lon=position.lon / 1e7,
                alt_rel_m=position.relative_alt / 1000.0, alt_msl_m=position.alt / 1000.0, roll_deg=roll_deg,
                pitch_deg=pitch_deg, yaw_deg=hdg, heading_deg=hdg,
                groundspeed_m_s=math.hypot(position.vx, position.vy) / 100.0, drone_id=drone_id)


def load_telemetry(path: str | Path, max_gap_s: float = 1.0, offset_s: float = 0.0) -> Telemetry:
    """Telemetry from .jsonl/.json, .csv or .tlog/.bin; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise VisionError(f"telemetry file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".json", ".ndjson"):
            poses = read_jsonl(path)
        elif suffix == ".csv":
            poses = read_csv(path)
        elif suffix in (".tlog", ".bin"):
            poses = read_tlog(path)
        else:
            raise VisionError(f"telemetry file {path}: unknown format {suffix!r} (use .jsonl, .csv or .tlog)")
    except UnicodeDecodeError as exc:
        raise VisionError(f"telemetry file {path} is not text: {exc.reason}") from exc
    if not poses:
        raise VisionError(f"telemetry file {path} holds no poses")
    return Telemetry(poses, max_gap_s=max_gap_s, offset_s=offset_s)


def write_jsonl(path: str | Path, poses: list[Pose]) -> None:
    with Path(path).open("w") as fh:
        for p in poses:
            fh.write(json.dumps({f: getattr(p, f) for f in _POSE_FIELDS}) + "\n")
