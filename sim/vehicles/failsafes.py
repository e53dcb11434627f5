"""Failsafes as ArduCopter runs them: GCS heartbeat loss, low/critical battery, geofence.

GCS: with FS_GCS_ENABLE set, armed, and a GCS (MAV_GCS_SYSID) seen once, no heartbeat for
FS_GCS_TIMEOUT s -> "GCS Failsafe" and the action; heartbeats back -> "GCS Failsafe Cleared"
(the vehicle stays in its failsafe mode). Battery: below BATT_LOW_VOLT for BATT_LOW_TIMER s (or
under BATT_LOW_MAH left) -> "Battery 1 is low ..." + "Battery Failsafe" and BATT_FS_LOW_ACT;
likewise critical. Fence: inclusion/exclusion polygons and circles from the fence list, the
home circle (FENCE_RADIUS) and FENCE_ALT_MAX, checked when armed and flying -> FENCE_ACTION.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from shapely.geometry import Point, Polygon
from shapely.prepared import prep

if TYPE_CHECKING:
    from sim.vehicles.ports import SimVehicle

# FS_GCS_ENABLE / BATT_FS_*_ACT / FENCE_ACTION values -> what the vehicle does
_GCS_ACTIONS = {1: "RTL", 2: "RTL", 3: "RTL", 4: "LAND", 5: "LAND", 6: "RTL", 7: "LAND"}
_BATT_ACTIONS = {1: "LAND", 2: "RTL", 3: "RTL", 4: "LAND", 5: "TERMINATE", 6: "RTL", 7: "LAND"}
_FENCE_ACTIONS = {1: "RTL", 2: "LAND", 3: "RTL", 4: "LAND", 5: "RTL", 6: "LAND"}
FENCE_TYPE_ALT_MAX, FENCE_TYPE_CIRCLE, FENCE_TYPE_POLYGON = 1, 2, 4


def check_all(v: SimVehicle, now: float) -> None:
    _gcs(v, now)
    _battery(v, now)
    _fence(v, now)


# ---------------------------------------------------------------- GCS
def _gcs(v: SimVehicle, now: float) -> None:
    enabled = int(v.params.get("FS_GCS_ENABLE"))
    last = v.last_gcs_hb_s
    if last is None:
        return
    lost = now - last > max(0.1, v.params.get("FS_GCS_TIMEOUT"))
    if v.fs_gcs:
        if not lost:
            v.fs_gcs = False
            v.send_text(4, "GCS Failsafe Cleared")
            v.send_heartbeat()
        return
    if lost and enabled and v.armed:
        v.fs_gcs = True
        action = _GCS_ACTIONS.get(enabled, "RTL")
        # FS_OPTIONS bit 0: continue an AUTO mission through a GCS failsafe
        if v.mode == 3 and int(v.params.get("FS_OPTIONS")) & 1:
            v.send_text(4, "GCS Failsafe")
            return
        v.failsafe_action(action)
        v.send_text(4, "GCS Failsafe")


# ---------------------------------------------------------------- battery
def _battery(v: SimVehicle, now: float) -> None:
    if not v.armed:
        v.batt_low_since = v.batt_crit_since = None
        return
    p = v.params
    b = v.battery
    volt = b.voltage_v
    left_mah = b.capacity_mah - b.consumed_mah
    timer = max(0.0, p.get("BATT_LOW_TIMER"))

    def below(threshold_v: float, since_attr: str) -> bool:
        if threshold_v > 0 and volt < threshold_v:
            if getattr(v, since_attr) is None:
                setattr(v, since_attr, now)
            return now - getattr(v, since_attr) >= timer
        setattr(v, since_attr, None)
        return False

    crit_mah = p.get("BATT_CRT_MAH")
    crit = below(p.get("BATT_CRT_VOLT"), "batt_crit_since") or (crit_mah > 0 and left_mah < crit_mah)
    low_mah = p.get("BATT_LOW_MAH")
    low = below(p.get("BATT_LOW_VOLT"), "batt_low_since") or (low_mah > 0 and left_mah < low_mah)
    if crit and not v.fs_battery_crit:
        v.fs_battery_crit = v.fs_battery_low = True
        _battery_action(v, int(p.get("BATT_FS_CRT_ACT")), "critical", volt, b.consumed_mah)
    elif low and not v.fs_battery_low:
        v.fs_battery_low = True
        _battery_action(v, int(p.get("BATT_FS_LOW_ACT")), "low", volt, b.consumed_mah)


def _battery_action(v: SimVehicle, act: int, level: str, volt: float, used_mah: float) -> None:
    action = _BATT_ACTIONS.get(act)
    if action == "TERMINATE":
        v.disarm(reason="battery")
    elif action is not None:
        v.failsafe_action(action)
    v.send_text(4, f"Battery 1 is {level} {volt:.2f}V used {used_mah:.0f} mAh")
    if action is not None:
        v.send_text(4, "Battery Failsafe")


# ---------------------------------------------------------------- fence
def rebuild_fence(v: SimVehicle) -> None:
    """Turn the stored fence items into prepared shapes in the vehicle's local frame (metres)."""
    inclusion, exclusion = [], []
    raw_incl: list[Polygon] = []
    raw_excl: list[Polygon] = []
    raw_circles: list[tuple[float, float, float]] = []  # exclusion circles: east, north, radius
    items = v.mission.lists[1]
    i = 0
    while i < len(items):
        it = items[i]
        if it.command in (5001, 5002):
            n = max(3, int(it.param1))
            verts = [v.frame.to_en(x.lat, x.lon) for x in items[i:i + n] if x.command == it.command]
            if len(verts) >= 3:
                poly = Polygon(verts)
                if not poly.is_valid:
                    poly = poly.buffer(0)
                (inclusion if it.command == 5001 else exclusion).append(prep(poly))
                (raw_incl if it.command == 5001 else raw_excl).append(poly)
            i += n
            continue
        if it.command in (5003, 5004):
            centre = Point(*v.frame.to_en(it.lat, it.lon))
            shape = prep(centre.buffer(max(0.1, it.param1), 32))
            (inclusion if it.command == 5003 else exclusion).append(shape)
            if it.command == 5004:
                raw_circles.append((centre.x, centre.y, max(0.1, it.param1)))
            else:
                raw_incl.append(centre.buffer(max(0.1, it.param1), 32))
        i += 1
    v.fence_shapes = (inclusion, exclusion)  # type: ignore[attr-defined]
    v.oa.set_fence(raw_incl, raw_excl, raw_circles)


def fence_enabled(v: SimVehicle) -> bool:
    if v.fence_enabled_runtime is not None:
        return v.fence_enabled_runtime
    return int(v.params.get("FENCE_ENABLE")) == 1


def _breaches_at(v: SimVehicle, e: float, n: float, up: float) -> int:
    ftype = int(v.params.get("FENCE_TYPE"))
    out = 0
    if ftype & FENCE_TYPE_ALT_MAX and up > v.params.get("FENCE_ALT_MAX"):
        out |= FENCE_TYPE_ALT_MAX
    if ftype & FENCE_TYPE_CIRCLE:
        radius = v.params.get("FENCE_RADIUS")
        he, hn = v.frame.to_en(v.home_lat, v.home_lon)
        if radius > 0 and math.hypot(e - he, n - hn) > radius:
            out |= FENCE_TYPE_CIRCLE
    if ftype & FENCE_TYPE_POLYGON:
        inclusion, exclusion = getattr(v, "fence_shapes", ([], []))
        p = Point(e, n)
        if any(not s.contains(p) for s in inclusion) or any(s.contains(p) for s in exclusion):
            out |= FENCE_TYPE_POLYGON
    return out


def fence_breached_now(v: SimVehicle) -> bool:
    e, n = v.est_en()
    return _breaches_at(v, e, n, v.kin.up_m) != 0


def location_allowed(v: SimVehicle, lat: float, lon: float, alt_rel_m: float) -> bool:
    """Would a guided target here stay inside an enabled fence? (Copter refuses it otherwise.)"""
    if not fence_enabled(v):
        return True
    e, n = v.frame.to_en(lat, lon)
    return _breaches_at(v, e, n, alt_rel_m) == 0


def _fence(v: SimVehicle, now: float) -> None:
    if not fence_enabled(v):
        v.fence_breaches = 0
        return
    e, n = v.est_en()
    breaches = _breaches_at(v, e, n, v.kin.up_m)
    new = breaches & ~v.fence_breaches
    v.fence_breaches = breaches
    if not new or not v.armed:
        return
    v.fence_breach_count += 1
    v.fence_breach_time_ms = v.time_boot_ms
    if v.landed:
        return
    v.send_text(5, "Fence Breached")
    action = _FENCE_ACTIONS.get(int(v.params.get("FENCE_ACTION")))
    if action is not None and v.mode not in (6, 9):
        v.failsafe_action(action)
