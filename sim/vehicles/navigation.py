"""Navigation and physics of one simulated ArduCopter: the position controller's target (`Nav`),
how the body flies towards it each physics step, object-avoidance legs round the fence, and RTL
(climb to RTL_ALT_M, return to home or the nearest rally point, loiter, descend and land).

Everything here takes the vehicle as a `ports.FlyingVehicle`; the controller steers on the
vehicle's estimate of where it is, which a GPS glitch moves off the truth.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from common.ardupilot_storage import RALLY
from sim.vehicles import failsafes
from sim.vehicles.ports import SEV_CRITICAL, SEV_INFO

if TYPE_CHECKING:
    from sim.vehicles.avoidance import DijkstraPlanner
    from sim.vehicles.ports import FlyingVehicle

PHYSICS_STEP_S = 0.05
WP_PATH_POINT_REACHED_M = 2.0  # Dijkstra's moves on to the next point within 2 m of this one


@dataclass(slots=True)
class Nav:
    """What the position controller is doing now."""

    kind: str = "idle"  # idle | hold | goto | land | velocity | manual | circle
    e: float = 0.0
    n: float = 0.0
    u: float = 0.0
    speed_m_s: float | None = None
    ve: float = 0.0
    vn: float = 0.0
    vu: float = 0.0
    until_s: float = 0.0
    climb_first: bool = False  # leaving the ground: climb to the target altitude, then go
    path: list = field(default_factory=list)  # object avoidance: points to pass first, in order
    replan_at_s: float = 0.0
    blocked_to: tuple | None = None  # object avoidance found no path to (e, n, u, speed, climb_first): holding


@dataclass(slots=True)
class ReturnState:
    """Where an RTL is (`rtl_step` moves it on): "" (none), climb, return, loiter, final, land."""

    phase: str = ""
    target: tuple[float, float] = (0.0, 0.0)  # home or the nearest rally point, east/north m


@dataclass(frozen=True, slots=True)
class _Limits:
    """One physics step's speed limits and wind (parameters read once per step)."""

    acc: float
    up: float
    dn: float
    wind_e: float
    wind_n: float


# ---------------------------------------------------------------------- speeds and wind
def wind_en(v: FlyingVehicle) -> tuple[float, float]:
    spd = v.params.get("SIM_WIND_SPD")
    if spd <= 0:
        return 0.0, 0.0
    to = math.radians(v.params.get("SIM_WIND_DIR") + 180.0)  # blows FROM dir, towards dir+180
    return spd * math.sin(to), spd * math.cos(to)


def wp_speed(v: FlyingVehicle) -> float:
    return v.wp_speed_override if v.wp_speed_override else max(0.2, v.params.get("WP_SPD"))


def _land_speed(v: FlyingVehicle) -> float:
    low_alt = v.params.get("LAND_ALT_LOW_M")
    if v.kin.up_m > low_alt:
        high = v.params.get("LAND_SPD_HIGH_MS")
        return high if high > 0 else v.params.get("WP_SPD_DN")
    return max(0.1, v.params.get("LAND_SPD_MS"))


def _glitch_offset(v: FlyingVehicle) -> tuple[float, float]:
    return v.faults.gps_glitch_offset_m if v.glitch_active else (0.0, 0.0)


# ---------------------------------------------------------------------- physics
def step(v: FlyingVehicle, dt: float, now: float) -> None:
    """One physics step of `dt` vehicle seconds towards `v.nav`."""
    k = v.kin
    if not v.armed:
        if v.landed:
            k.stop()
        else:  # disarmed in the air: it falls
            k.vu_m_s = max(-20.0, k.vu_m_s - 9.8 * dt)
            k.up_m += k.vu_m_s * dt
            _check_ground(v, now)
        _battery(v, dt)
        return
    if v.landed and now < v.spool_until_s:
        k.stop()  # motors spooling up before a takeoff
        _battery(v, dt)
        return
    wind_e, wind_n = wind_en(v)
    lim = _Limits(max(0.5, v.params.get("WP_ACC")), max(0.2, v.params.get("WP_SPD_UP")),
                  max(0.2, v.params.get("WP_SPD_DN")), wind_e, wind_n)
    kind = v.nav.kind
    if kind == "idle":
        k.stop()
    elif kind in ("hold", "goto"):
        _fly_leg(v, dt, now, lim)
    elif kind == "land":
        ge, gn = _glitch_offset(v)
        k.step_to(dt, v.nav.e - ge, v.nav.n - gn, 0.0, 2.0, lim.acc, lim.up, lim.dn, lim.wind_e, lim.wind_n,
                  climb_m_s=-_land_speed(v))
    elif kind == "velocity":
        _fly_velocity(v, dt, now, lim)
    elif kind in ("manual", "circle"):
        _fly_pilot(v, dt, lim)
    if k.up_m <= 0.0 and k.vu_m_s <= 0.0:
        _check_ground(v, now)
    elif k.up_m > 0.2:
        v.landed = False
        if k.up_m > 0.5:
            v.land_complete = False
    _battery(v, dt)


def _fly_leg(v: FlyingVehicle, dt: float, now: float, lim: _Limits) -> None:
    """hold / goto: to the target, through the avoidance path's points first."""
    k = v.kin
    nav = v.nav
    ge, gn = _glitch_offset(v)
    speed = nav.speed_m_s or wp_speed(v)
    te, tn = nav.e - ge, nav.n - gn
    while nav.path and math.hypot(nav.path[0][0] - ge - k.east_m,
                                  nav.path[0][1] - gn - k.north_m) < WP_PATH_POINT_REACHED_M:
        nav.path.pop(0)
        nav.replan_at_s = 0.0
    if nav.path and now >= nav.replan_at_s:
        # Copter tracks each leg from point to point; this point-mass flies at the target
        # from wherever momentum left it, so the path is re-planned from there as it goes
        nav.replan_at_s = now + 0.5
        fresh = _planner(v).path(v.est_en(), (nav.e, nav.n)) if oa_active(v) else None
        if fresh is not None:
            nav.path = list(fresh[:-1])
    if nav.path:
        te, tn = nav.path[0][0] - ge, nav.path[0][1] - gn
    if nav.blocked_to is not None and now >= nav.replan_at_s:
        # Dijkstra's keeps trying (the fence or OA_TYPE may have changed)
        v.nav = nav = goto_nav(v, *nav.blocked_to)
    if nav.climb_first:
        # from the ground Copter climbs (nearly) vertically before it sets off
        if k.up_m < nav.u - 1.0:
            te, tn = k.east_m, k.north_m
        else:
            nav.climb_first = False
    k.step_to(dt, te, tn, nav.u, speed, lim.acc, lim.up, lim.dn, lim.wind_e, lim.wind_n)
    _face_travel_or_roi(v)


def _fly_velocity(v: FlyingVehicle, dt: float, now: float, lim: _Limits) -> None:
    nav = v.nav
    if now > nav.until_s:  # ArduCopter stops if velocity commands stop for 3 s
        nav.kind, nav.e, nav.n, nav.u = "hold", *v.est_en(), v.kin.up_m
    else:
        v.kin.step_velocity(dt, nav.ve, nav.vn, nav.vu, lim.acc, lim.wind_e, lim.wind_n)


def _fly_pilot(v: FlyingVehicle, dt: float, lim: _Limits) -> None:
    """manual / circle: pilot throttle sets the climb; low (no RC) descends, mid holds, high climbs."""
    k = v.kin
    nav = v.nav
    thr = v.rc_throttle if v.rc_throttle > 900 else 1000
    pilot_dn = v.params.get("PILOT_SPD_DN") or v.params.get("PILOT_SPD_UP")
    if thr < 1400:
        vz = -pilot_dn
    elif thr > 1600:
        vz = v.params.get("PILOT_SPD_UP")
    else:
        vz = 0.0
    if nav.kind == "circle":
        r = max(1.0, v.params.get("CIRCLE_RADIUS_M"))
        rate = math.radians(v.params.get("CIRCLE_RATE") or 20.0)
        speed = min(wp_speed(v), r * abs(rate))
        ang = math.atan2(k.east_m - nav.e, k.north_m - nav.n) + speed / r * dt
        te, tn = nav.e + r * math.sin(ang), nav.n + r * math.cos(ang)
        k.step_to(dt, te, tn, k.up_m, speed * 1.2, lim.acc, lim.up, lim.dn, lim.wind_e, lim.wind_n, climb_m_s=vz)
    else:
        ge, gn = _glitch_offset(v)
        k.step_to(dt, nav.e - ge, nav.n - gn, k.up_m, wp_speed(v), lim.acc, lim.up, lim.dn, lim.wind_e, lim.wind_n,
                  climb_m_s=vz)


def _battery(v: FlyingVehicle, dt: float) -> None:
    we, wn = wind_en(v)
    air = math.hypot(v.kin.ve_m_s - we, v.kin.vn_m_s - wn)
    v.battery.step(dt, v.armed, v.airborne, air, v.kin.vu_m_s)


def _check_ground(v: FlyingVehicle, now: float) -> None:
    k = v.kin
    if v.landed:
        k.up_m = 0.0
        return
    impact = -k.vu_m_s
    k.up_m = 0.0
    k.stop()
    v.landed = True
    v.send_text(SEV_INFO, f"SIM Hit ground at {impact:.6f} m/s")
    if v.armed and (v.nav.kind == "land"):
        v.disarm_at_s = now + 2.0  # land detector, then auto-disarm


def _face_travel_or_roi(v: FlyingVehicle) -> None:
    k = v.kin
    if v.roi is not None:
        re_, rn = v.frame.to_en(v.roi[0], v.roi[1])
        if math.hypot(re_ - k.east_m, rn - k.north_m) > 0.5:
            k.yaw_deg = math.degrees(math.atan2(re_ - k.east_m, rn - k.north_m)) % 360.0
        return
    if k.groundspeed_m_s > 1.0 and int(v.params.get("WP_YAW_BEHAVIOR")) != 0:
        k.yaw_deg = k.course_deg


# ---------------------------------------------------------------------- object avoidance (OA_TYPE 2)
def oa_active(v: FlyingVehicle) -> bool:
    """Would Dijkstra's plan this leg? (wp_nav legs go round the fence's zones)"""
    polygon_fence = failsafes.fence_enabled(v) and bool(
        int(v.params.get("FENCE_TYPE")) & failsafes.FENCE_TYPE_POLYGON)
    return v.oa.active(v.params.get("OA_TYPE"), polygon_fence)


def oa_needs_reboot(v: FlyingVehicle) -> bool:
    return v.oa.needs_reboot(v.params.get("OA_TYPE"))


def _planner(v: FlyingVehicle) -> DijkstraPlanner:
    return v.oa.planner(v.params.get("OA_MARGIN_MAX"))


def goto_nav(v: FlyingVehicle, e: float, n: float, u: float, speed_m_s: float | None = None,
             climb_first: bool = False) -> Nav:
    """A wp_nav leg to (e, n, u): straight, or round the fence when object avoidance is on.
    Without a path the vehicle stops where it is and says so, as Copter does."""
    nav = Nav("goto", e, n, u, speed_m_s=speed_m_s, climb_first=climb_first)
    if not oa_active(v):
        return nav
    here = v.est_en()
    path = _planner(v).path(here, (e, n))
    if path is None:
        if v.oa.no_path_report_due(v.now):
            v.send_text(SEV_CRITICAL, "Dijkstra: could not find path")
        return Nav("hold", *here, v.kin.up_m, blocked_to=(e, n, u, speed_m_s, climb_first),
                   replan_at_s=v.now + 1.0)
    nav.path = list(path[:-1])
    return nav


# ---------------------------------------------------------------------- RTL
def start_rtl(v: FlyingVehicle) -> None:
    """Climb to RTL_ALT_M (at least RTL_CLIMB_MIN_M more), then `rtl_step` flies the rest."""
    k = v.kin
    rtl_alt = max(v.params.get("RTL_ALT_M"), k.up_m + v.params.get("RTL_CLIMB_MIN_M"))
    v.rtl.target = _rtl_destination(v)
    e, n = v.est_en()
    if v.landed:
        v.rtl.phase = "land"
        v.nav = Nav("land", e, n, 0.0)
        return
    v.rtl.phase = "climb"
    v.nav = Nav("goto", e, n, rtl_alt)


def _rtl_destination(v: FlyingVehicle) -> tuple[float, float]:
    """Home, or the nearest rally point when one is nearer."""
    best = (0.0, 0.0)
    e, n = v.est_en()
    best_d = math.hypot(e, n)
    for r in v.mission.lists[RALLY]:
        re_, rn = v.frame.to_en(r.lat, r.lon)
        d = math.hypot(re_ - e, rn - n)
        if d < best_d:
            best, best_d = (re_, rn), d
    return best


def rtl_step(v: FlyingVehicle, now: float) -> None:
    """climb -> return -> loiter (RTL_LOIT_TIME) -> final (RTL_ALT_FINAL_M) or land."""
    k = v.kin
    e, n = v.est_en()
    if v.rtl.phase == "climb":
        if k.up_m >= v.nav.u - 0.5:
            v.rtl.phase = "return"
            speed = v.params.get("RTL_SPEED_MS") or None
            v.nav = goto_nav(v, *v.rtl.target, v.nav.u, speed_m_s=speed)
    elif v.rtl.phase == "return":
        if v.nav.blocked_to is not None or v.nav.path:
            return  # going round a zone, or stopped without a path (Dijkstra's error)
        if math.hypot(v.rtl.target[0] - e, v.rtl.target[1] - n) < 2.0 and k.groundspeed_m_s < 1.0:
            # hover over home for RTL_LOIT_TIME (ms) before descending, as Copter does
            v.rtl.phase = "loiter"
            v.nav = Nav("hold", *v.rtl.target, v.nav.u, until_s=now + v.params.get("RTL_LOIT_TIME") / 1000.0)
    elif v.rtl.phase == "loiter":
        if now >= v.nav.until_s:
            final = v.params.get("RTL_ALT_FINAL_M")
            if final > 0:
                v.rtl.phase = "final"
                v.nav = Nav("hold", *v.rtl.target, final)
            else:
                v.rtl.phase = "land"
                v.nav = Nav("land", *v.rtl.target, 0.0)
