"""Mission files: QGroundControl Plan JSON (.plan) and QGC WPL 110 (.waypoints), both ways.

.plan holds the mission (home as plannedHomePosition, then SimpleItems), the geofence (inclusion
and exclusion polygons and circles) and rally points, so one file is one complete sortie; our
own metadata (name, drone_id, grid_ids) rides in an extra top-level key QGC ignores.
.waypoints holds the mission only, home as row 0.

Coordinates are written with 8 decimals (about 1 mm), what missions carry anyway; planner
missions are rounded to that, so reading back gives the same Mission.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from common.values import (MAV_CMD_NAV_WAYPOINT, MAV_FRAME_GLOBAL, FenceZone, Mission, MissionItem,
                           RallyPoint)

from .errors import PlanningError

QGC_FIRMWARE_ARDUPILOT = 3
QGC_VEHICLE_MULTIROTOR = 2
META_KEY = "danLeopardPatrol"


def _f(v: float) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


def mission_to_plan_dict(mission: Mission) -> dict:
    if not mission.items:
        raise PlanningError(f"mission {mission.name!r} has no items (items[0] must be home)")
    home = mission.items[0]
    items = []
    for seq, it in enumerate(mission.items[1:], start=1):
        items.append({
            "type": "SimpleItem",
            "autoContinue": bool(it.autocontinue),
            "command": it.command,
            "doJumpId": seq,
            "frame": it.frame,
            "params": [_f(it.param1), _f(it.param2), _f(it.param3), _f(it.param4), it.lat, it.lon, it.alt_m],
            "Altitude": it.alt_m,
            "AltitudeMode": 1,
            "AMSLAltAboveTerrain": None,
        })
    polygons, circles = [], []
    for z in mission.fence:
        if z.is_circle:
            lat, lon = z.vertices[0]
            circles.append({"circle": {"center": [lat, lon], "radius": z.radius_m}, "inclusion": z.inclusion,
                            "version": 1})
        else:
            polygons.append({"inclusion": z.inclusion, "polygon": [[lat, lon] for lat, lon in z.vertices],
                             "version": 1})
    cruise = next((it.param2 for it in mission.items if it.command == 178 and it.param2 > 0), 10.0)
    return {
        "fileType": "Plan",
        "version": 1,
        "groundStation": "QGroundControl",
        "mission": {
            "version": 2,
            "firmwareType": QGC_FIRMWARE_ARDUPILOT,
            "vehicleType": QGC_VEHICLE_MULTIROTOR,
            "cruiseSpeed": cruise,
            "hoverSpeed": 5,
            "globalPlanAltitudeMode": 1,
            "plannedHomePosition": [home.lat, home.lon, home.alt_m],
            "items": items,
        },
        "geoFence": {"version": 2, "polygons": polygons, "circles": circles},
        "rallyPoints": {"version": 2, "points": [[r.lat, r.lon, r.alt_m] for r in mission.rally]},
        META_KEY: {"name": mission.name, "drone_id": mission.drone_id, "grid_ids": list(mission.grid_ids),
                   # QGC keeps polygons and circles apart; this restores the Mission's zone order.
                   "fence_order": "".join("c" if z.is_circle else "p" for z in mission.fence)},
    }


def write_plan(path: str | Path, mission: Mission) -> Path:
    path = Path(path)
    path.write_text(json.dumps(mission_to_plan_dict(mission), indent=1) + "\n", encoding="utf-8")
    return path


def read_plan(path: str | Path) -> Mission:
    """A QGC .plan file as a Mission (items[0] = home from plannedHomePosition)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PlanningError(f"cannot read plan file {path}: {exc}") from exc
    try:
        return plan_dict_to_mission(data)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise PlanningError(f"plan file {path} is not a valid QGC plan: {exc!r}") from exc


def plan_dict_to_mission(data: dict) -> Mission:
    if data.get("fileType") != "Plan":
        raise ValueError("fileType is not 'Plan'")
    m = data["mission"]
    hlat, hlon, halt = (list(m.get("plannedHomePosition") or [0, 0, 0]) + [0, 0, 0])[:3]
    items = [MissionItem(MAV_CMD_NAV_WAYPOINT, float(hlat), float(hlon), float(halt or 0.0), frame=MAV_FRAME_GLOBAL)]
    for it in m.get("items", []):
        if it.get("type") != "SimpleItem":
            raise ValueError(f"unsupported item type {it.get('type')!r} (only SimpleItem; flatten complex items in QGC)")
        p = [0.0 if v is None else float(v) for v in it["params"]]
        p += [0.0] * (7 - len(p))
        items.append(MissionItem(int(it["command"]), p[4], p[5], p[6], frame=int(it.get("frame", 3)),
                                 param1=p[0], param2=p[1], param3=p[2], param4=p[3],
                                 autocontinue=1 if it.get("autoContinue", True) else 0))
    gf = data.get("geoFence") or {}
    polygons = [FenceZone(bool(poly.get("inclusion", True)), tuple((float(a), float(b)) for a, b in poly["polygon"]))
                for poly in gf.get("polygons", [])]
    circles = []
    for c in gf.get("circles", []):
        circle = c["circle"]
        lat, lon = circle["center"]
        circles.append(FenceZone(bool(c.get("inclusion", True)), ((float(lat), float(lon)),), float(circle["radius"])))
    rally = tuple(RallyPoint(float(p[0]), float(p[1]), float(p[2])) for p in (data.get("rallyPoints") or {}).get("points", []))
    meta = data.get(META_KEY) or {}
    order = str(meta.get("fence_order", ""))
    if sorted(order) == sorted("p" * len(polygons) + "c" * len(circles)):
        queues = {"p": iter(polygons), "c": iter(circles)}
        fence = [next(queues[kind]) for kind in order]
    else:  # a file from QGC itself: polygons, then circles
        fence = polygons + circles
    return Mission(tuple(items), tuple(fence), rally, name=str(meta.get("name", "")),
                   drone_id=str(meta.get("drone_id", "")), grid_ids=tuple(meta.get("grid_ids", ())))


def _num(v: float) -> str:
    return repr(float(v))


def write_waypoints(path: str | Path, mission: Mission) -> Path:
    """QGC WPL 110: one row per item, home as row 0 (current=1). Fence and rally are not stored."""
    path = Path(path)
    lines = ["QGC WPL 110"]
    for seq, it in enumerate(mission.items):
        lines.append("\t".join([
            str(seq), "1" if seq == 0 else "0", str(it.frame), str(it.command),
            _num(it.param1), _num(it.param2), _num(it.param3), _num(it.param4),
            f"{it.lat:.8f}", f"{it.lon:.8f}", _num(it.alt_m), str(it.autocontinue)]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_waypoints(path: str | Path) -> Mission:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanningError(f"cannot read waypoints file {path}: {exc}") from exc
    rows = [r for r in text.splitlines() if r.strip()]
    if not rows or not rows[0].startswith("QGC WPL 110"):
        raise PlanningError(f"{path} is not a QGC WPL 110 file (first line must be 'QGC WPL 110')")
    items = []
    for n, row in enumerate(rows[1:], start=2):
        f = row.split("\t") if "\t" in row else row.split()
        if len(f) != 12:
            raise PlanningError(f"{path} line {n}: expected 12 fields, got {len(f)}")
        try:
            seq = int(f[0])
            if seq != len(items):
                raise ValueError(f"sequence {seq} out of order (expected {len(items)})")
            items.append(MissionItem(int(f[3]), float(f[8]), float(f[9]), float(f[10]), frame=int(f[2]),
                                     param1=float(f[4]), param2=float(f[5]), param3=float(f[6]),
                                     param4=float(f[7]), autocontinue=int(f[11])))
        except ValueError as exc:
            raise PlanningError(f"{path} line {n}: {exc}") from exc
    if not items:
        raise PlanningError(f"{path} has no items (row 0 must be home)")
    return Mission(tuple(items), name=path.stem)
