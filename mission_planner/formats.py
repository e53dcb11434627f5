"""Mission files: QGroundControl Plan JSON (.plan) and QGC WPL 110 (.waypoints), both ways.

.plan holds the mission (home as plannedHomePosition, then SimpleItems), the geofence (inclusion
and exclusion polygons and circles) and rally points, so one file is one complete sortie; our
own metadata (name, drone_id, grid_ids) rides in an extra top-level key QGC ignores.
.waypoints holds the mission only, home as row 0.

Plans made in QGroundControl load too: null params (QGC's NaN) stay NaN, survey and corridor-scan
ComplexItems contribute the items QGC generated for them (TransectStyleComplexItem.Items), and
DO_JUMP targets (doJumpIds in the file) become item numbers. Whether ArduCopter can store each
item is for flight/ to say (common.ardupilot_storage), item by item.

Coordinates are written with 8 decimals (about 1 mm), what missions carry anyway; planner
missions are rounded to that, so reading back gives the same Mission.
"""
from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

from common.values import (MAV_CMD_DO_JUMP, MAV_CMD_NAV_WAYPOINT, MAV_FRAME_GLOBAL, FenceZone, Mission, MissionItem,
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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanningError(f"cannot read plan file {path}: {exc}") from exc
    try:
        return plan_dict_to_mission(data)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
        raise PlanningError(f"plan file {path} is not a valid QGC plan: {exc!r}") from exc


def _simple_item(it: dict, where: str) -> MissionItem:
    """One QGC SimpleItem. QGC writes NaN params (e.g. "unchanged yaw") as null: they stay NaN, so
    the vehicle's own rules (ArduCopter keeps NaN yaw on a waypoint, refuses it elsewhere) decide."""
    if not isinstance(it.get("params"), list):
        raise ValueError(f"{where}: SimpleItem without a params list")
    p = [math.nan if v is None else float(v) for v in it["params"][:4]]
    p += [math.nan] * (4 - len(p))
    loc = [0.0 if v is None else float(v) for v in it["params"][4:7]]
    loc += [0.0] * (3 - len(loc))
    return MissionItem(int(it["command"]), loc[0], loc[1], loc[2], frame=int(it.get("frame", 3)),
                       param1=p[0], param2=p[1], param3=p[2], param4=p[3],
                       autocontinue=1 if it.get("autoContinue", True) else 0)


# ComplexItems QGC stores with their generated mission items (TransectStyleComplexItem.Items)
_TRANSECT_ITEMS = {"survey", "CorridorScan"}


def _flatten_items(raw: list) -> list[tuple[MissionItem, int | None]]:
    """QGC's mission items as flat MissionItems, each with its doJumpId. A survey or corridor
    scan contributes the items QGC generated for it; other ComplexItems (structure scan, landing
    patterns) carry no items in the file and are refused, naming the item."""
    out: list[tuple[MissionItem, int | None]] = []
    for n, it in enumerate(raw, start=1):
        kind = it.get("type")
        if kind == "SimpleItem":
            out.append((_simple_item(it, f"mission item {n}"), it.get("doJumpId")))
        elif kind == "ComplexItem":
            ctype = it.get("complexItemType")
            if ctype not in _TRANSECT_ITEMS:
                raise ValueError(f"mission item {n}: ComplexItem {ctype!r} holds no generated items "
                                 f"(only survey and CorridorScan do); convert it to waypoints in QGC")
            generated = (it.get("TransectStyleComplexItem") or {}).get("Items")
            if not generated:
                raise ValueError(f"mission item {n}: {ctype} without TransectStyleComplexItem.Items")
            for k, sub in enumerate(generated, start=1):
                if sub.get("type") != "SimpleItem":
                    raise ValueError(f"mission item {n} ({ctype}) item {k}: not a SimpleItem")
                out.append((_simple_item(sub, f"mission item {n} ({ctype}) item {k}"), sub.get("doJumpId")))
        else:
            raise ValueError(f"mission item {n}: unknown item type {kind!r}")
    return out


def _resolve_jumps(items: list[MissionItem], jump_ids: list[int | None]) -> list[MissionItem]:
    """QGC writes a DO_JUMP's target as the doJumpId of an item, the vehicle wants its seq."""
    seq_of = {jid: seq for seq, jid in enumerate(jump_ids) if jid is not None}
    out = list(items)
    for seq, it in enumerate(items):
        if it.command == MAV_CMD_DO_JUMP:
            if it.param1 not in seq_of:
                raise ValueError(f"mission item {seq}: DO_JUMP to doJumpId {it.param1:g}, which no item has")
            out[seq] = replace(it, param1=float(seq_of[it.param1]))
    return out


def plan_dict_to_mission(data: dict) -> Mission:
    if not isinstance(data, dict):
        raise ValueError(f"a plan is a JSON object, this file holds a {type(data).__name__}")
    if data.get("fileType") != "Plan":
        raise ValueError("fileType is not 'Plan'")
    m = data["mission"]
    hlat, hlon, halt = (list(m.get("plannedHomePosition") or [0, 0, 0]) + [0, 0, 0])[:3]
    home = MissionItem(MAV_CMD_NAV_WAYPOINT, float(hlat), float(hlon), float(halt or 0.0), frame=MAV_FRAME_GLOBAL)
    flat = _flatten_items(m.get("items", []))
    items = _resolve_jumps([home] + [it for it, _ in flat], [None] + [jid for _, jid in flat])
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
    except (OSError, UnicodeDecodeError) as exc:
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
