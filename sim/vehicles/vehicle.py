"""One simulated ArduCopter: boot, arming, modes, commands, missions, flight, failsafes.

It answers a GCS the way ArduCopter 4.8 does in ../shared/ardupilot (texts, results, message
order); see docs/sim.md for what is modelled and what is simplified. All times are vehicle
seconds from the fleet's clock (wall time x speedup), so timeouts scale with speedup.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from common.geo import LocalFrame
from common.modes import MANUAL_THROTTLE, MODE_NAMES, NOT_ARMABLE, REQUIRES_POSITION, CopterMode
from common.values import Pose
from sim.vehicles import failsafes, telemetry
from sim.vehicles.avoidance import DijkstraPlanner, ObjectAvoidance
from sim.vehicles.boot import BootSequence
from sim.vehicles.faults import VehicleFaults
from common.ardupilot_storage import WireItem
from sim.vehicles.mission_walk import cmd_name, next_nav_item, starts_with_takeoff
from sim.vehicles.mission_store import FENCE, MISSION, RALLY, MissionStore
from sim.vehicles.params import ParamStore
from sim.vehicles.physics import Battery, Kinematics

if TYPE_CHECKING:
    from sim.vehicles.link import GcsConnection

STABILIZE, AUTO, GUIDED, RTL, CIRCLE, LAND, BRAKE, SMART_RTL = (
    CopterMode.STABILIZE, CopterMode.AUTO, CopterMode.GUIDED, CopterMode.RTL, CopterMode.CIRCLE, CopterMode.LAND,
    CopterMode.BRAKE, CopterMode.SMART_RTL)

SEV_CRITICAL, SEV_WARNING, SEV_NOTICE, SEV_INFO, SEV_DEBUG = 2, 4, 5, 6, 7
FORCE_ARM_MAGIC, FORCE_DISARM_MAGIC = 2989, 21196

MAV_RESULT_ACCEPTED, MAV_RESULT_DENIED, MAV_RESULT_UNSUPPORTED, MAV_RESULT_FAILED = 0, 2, 3, 4

TAKEOFF_SETTLE_S = 1.4


@dataclass(frozen=True, slots=True)
class VehicleTruth:
    """Ground truth of one simulated vehicle, for tests and trainers (never sent over MAVLink)."""

    lat: float
    lon: float
    alt_rel_m: float
    alt_msl_m: float
    mode: str
    mode_number: int
    armed: bool
    landed: bool
    battery_remaining_pct: int
    voltage_v: float
    groundspeed_m_s: float
    heading_deg: float
    mission_seq: int
    time_s: float


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


class SimulatedVehicle:
    """An ArduCopter lookalike behind MAVLink endpoints; built and ticked by `SimulatedFleet`."""

    def __init__(self, index: int, home: tuple[float, float, float], clock: Callable[[], float],
                 port: int, param_style: str = "4.7", fast_start: bool = False, seed: int = 0) -> None:
        self.index = index
        self.sysid = index + 1
        self.port = port
        self.seed = seed
        self.clock = clock
        self.rng = random.Random(seed * 1000 + index)
        self.params = ParamStore(param_style)
        self.params.set("MAV_SYSID", self.sysid)
        self.faults = VehicleFaults(self)
        self.battery = Battery(capacity_mah=self.params.get("BATT_CAPACITY"))
        self.kin = Kinematics()
        self.home_lat, self.home_lon, self.home_alt_msl = home
        self.frame = LocalFrame(self.home_lat, self.home_lon)
        self.connections: list[GcsConnection] = []
        self._early_texts: list[mavlink.MAVLink_message] = []
        self.mission = MissionStore(self._send_to, self.send_text, self._mission_changed, self._home_item)

        # boot
        self.fast_start = fast_start
        self.boot = BootSequence(fast_start)
        self.heartbeat_started = False
        self.booting = True  # system_status 1 (BOOT) until "standby"
        self.origin_set = False
        self.home_set = False
        self.position_ok = False  # "EKF3 IMU0 is using GPS": armable

        # state
        self.mode = STABILIZE
        self.armed = False
        self.landed = True  # physically on the ground
        self.land_complete = True  # ArduCopter's land detector (HEARTBEAT STANDBY vs ACTIVE)
        self._spool_until_s = 0.0
        self._idle_since_s: float | None = None
        self.nav = Nav()
        self.wp_speed_override: float | None = None
        self.roi: tuple[float, float, float] | None = None  # lat, lon, alt
        self.rc_throttle = 1000
        self._last_t = 0.0
        self._next_hb_s = 0.0
        self._next_timesync_s = 10.0
        self._disarm_at_s: float | None = None
        self.last_gcs_hb_s: float | None = None
        self.fs_gcs = False
        self.fs_battery_low = False
        self.fs_battery_crit = False
        self.batt_low_since: float | None = None
        self.batt_crit_since: float | None = None
        self.fence_enabled_runtime: bool | None = None
        self.fence_breaches = 0
        self.fence_breach_count = 0
        self.fence_breach_time_ms = 0
        self._glitch_active = False
        self.rtl_phase = ""
        self.rtl_target: tuple[float, float] = (0.0, 0.0)
        # mission execution
        self.mission_cur = 0
        self.mission_running = False
        self.mission_complete = False
        self._wp_reached_at: float | None = None
        self._jump_counts: dict[int, int] = {}
        self.target_info: tuple[float, float, float] | None = None  # active target lat, lon, alt_rel
        self.arm_time_s: float | None = None
        self.telemetry_cache: dict[int, mavlink.MAVLink_message] = {}
        self.telemetry_cache_tick = -1
        self.tick_seq = 0
        self.params.set("SIM_SPEEDUP", 1.0)
        # object avoidance: the Dijkstra planner exists only if OA_TYPE asked for it at boot
        self.oa = ObjectAvoidance()
        self.load_boot_params()

    def load_boot_params(self) -> None:
        """What ArduPilot reads only at boot (call after changing such parameters before start)."""
        self.oa.boot(self.params.get("OA_TYPE"))

    # ------------------------------------------------------------------ basics
    @property
    def now(self) -> float:
        return self.clock()

    @property
    def url(self) -> str:
        return f"tcp:127.0.0.1:{self.port}"

    @property
    def time_boot_ms(self) -> int:
        return int((self.now - self.boot.t0) * 1000) & 0xFFFFFFFF

    @property
    def airborne(self) -> bool:
        return not self.landed

    def est_en(self) -> tuple[float, float]:
        """Where the autopilot believes it is (truth + GPS glitch offset)."""
        e, n = self.kin.east_m, self.kin.north_m
        if self._glitch_active:
            ge, gn = self.faults.gps_glitch_offset_m
            return e + ge, n + gn
        return e, n

    def est_latlon(self) -> tuple[float, float]:
        return self.frame.to_latlon(*self.est_en())

    @property
    def truth(self) -> VehicleTruth:
        lat, lon = self.frame.to_latlon(self.kin.east_m, self.kin.north_m)
        return VehicleTruth(
            lat=lat, lon=lon, alt_rel_m=self.kin.up_m, alt_msl_m=self.home_alt_msl + self.kin.up_m,
            mode=MODE_NAMES.get(self.mode, str(self.mode)), mode_number=self.mode, armed=self.armed,
            landed=self.landed, battery_remaining_pct=self.battery.remaining_pct,
            voltage_v=round(self.battery.voltage_v, 3), groundspeed_m_s=self.kin.groundspeed_m_s,
            heading_deg=self.kin.yaw_deg % 360.0, mission_seq=self.mission_cur, time_s=self.now)

    @property
    def pose(self) -> Pose:
        """Ground-truth `common.values.Pose` (for the synthetic camera and trainers)."""
        from sim.vehicles.telemetry import lean

        t = self.truth
        roll, pitch = lean(self)
        return Pose(time_s=t.time_s, lat=t.lat, lon=t.lon, alt_rel_m=t.alt_rel_m, alt_msl_m=t.alt_msl_m,
                    roll_deg=math.degrees(roll), pitch_deg=math.degrees(pitch), yaw_deg=t.heading_deg,
                    groundspeed_m_s=t.groundspeed_m_s, heading_deg=self.kin.course_deg, drone_id=str(self.sysid))

    # ------------------------------------------------------------------ links
    def add_connection(self, conn: GcsConnection) -> None:
        self.connections.append(conn)
        if self._early_texts:
            # like SITL's serial buffer: what was said before anyone listened reaches the first GCS
            for m in self._early_texts:
                conn.send(m)
            self._early_texts.clear()
            conn.flush()

    def remove_connection(self, conn: GcsConnection) -> None:
        if conn in self.connections:
            self.connections.remove(conn)

    def _send_to(self, conn: GcsConnection, msg: mavlink.MAVLink_message) -> None:
        conn.send(msg)

    def broadcast(self, msg: mavlink.MAVLink_message) -> None:
        for c in self.connections:
            c.send(msg)

    def flush_all(self) -> None:
        for c in self.connections:
            c.flush()

    def send_text(self, severity: int, text: str) -> None:
        msg = mavlink.MAVLink_statustext_message(severity, text.encode()[:50], 0, 0)
        if not self.connections:
            if len(self._early_texts) < 40:
                self._early_texts.append(msg)
            return
        self.broadcast(msg)

    def send_heartbeat(self) -> None:
        self.broadcast(telemetry.heartbeat(self))

    def param_value(self, wire_name: str, index: int = 65535) -> mavlink.MAVLink_message:
        return mavlink.MAVLink_param_value_message(
            wire_name.encode(), self.params.wire_value(wire_name), self.params.wire_type(wire_name),
            self.params.count, index)

    def _notify_param(self, name: str, value: float) -> None:
        """An autopilot-side change to a parameter, broadcast like ArduPilot does (MIS_TOTAL ...)."""
        self.params.set(name, value)
        wire = self.params.wire_name_of(name)
        if self.params.wire_value(wire) is not None and self.connections:
            self.broadcast(self.param_value(wire))

    # ------------------------------------------------------------------ tick
    def tick(self, now: float) -> None:
        """Advance to vehicle time `now`: boot events, flight, failsafes, telemetry."""
        self.tick_seq += 1
        dt_total = now - self._last_t
        self._last_t = now
        self._boot_step(now)
        if dt_total > 0:
            steps = max(1, int(math.ceil(dt_total / 0.05)))
            dt = dt_total / steps
            for _ in range(steps):
                self._physics(dt, now)
        self._flight_logic(now)
        self.mission.tick(now)
        for name, value in self.mission.param_notices:
            self._notify_param(name, value)
        self.mission.param_notices.clear()
        failsafes.check_all(self, now)
        if self.heartbeat_started and now >= self._next_hb_s:
            self._next_hb_s = max(self._next_hb_s + 1.0, now + 0.5)
            self.send_heartbeat()
        if now >= self._next_timesync_s:
            # ArduPilot probes link latency every 10 s with a TIMESYNC request (tc1 = 0)
            self._next_timesync_s = now + 10.0
            if self.heartbeat_started:
                self.broadcast(mavlink.MAVLink_timesync_message(0, int(now * 1e9)))
        if self.connections:
            telemetry.send_due(self, now)
        self.flush_all()

    def _boot_step(self, now: float) -> None:
        for texts, ev in self.boot.due(now):
            if ev == "heartbeat":
                self.heartbeat_started = True
                self._next_hb_s = now
            elif ev == "standby":
                self.booting = False
            elif ev == "origin":
                self._set_origin()
            elif ev == "using_gps":
                self.position_ok = True
            for sev, text in texts:
                self.send_text(sev, text.format(alt=f"{self.home_alt_msl:.0f}"))
        oa_needs_reboot = not self.armed and self.position_ok and self._oa_needs_reboot()
        if (not self.position_ok or oa_needs_reboot) and self.boot.prearm_report_due(now):
            reasons = self.arming_failures()
            if reasons:
                self.send_text(SEV_CRITICAL, "PreArm: " + reasons[-1])

    def _set_origin(self) -> None:
        self.origin_set = True
        self.home_set = True
        self.broadcast(telemetry.gps_global_origin(self))
        self.broadcast(telemetry.home_position(self))
        self.send_text(SEV_INFO, "EKF3 IMU0 origin set")
        self._notify_param("MIS_TOTAL", float(self.mission.count(MISSION)))

    # ------------------------------------------------------------------ physics
    def wind_en(self) -> tuple[float, float]:
        spd = self.params.get("SIM_WIND_SPD")
        if spd <= 0:
            return 0.0, 0.0
        to = math.radians(self.params.get("SIM_WIND_DIR") + 180.0)  # blows FROM dir, towards dir+180
        return spd * math.sin(to), spd * math.cos(to)

    def wp_speed(self) -> float:
        return self.wp_speed_override if self.wp_speed_override else max(0.2, self.params.get("WP_SPD"))

    def _land_speed(self) -> float:
        low_alt = self.params.get("LAND_ALT_LOW_M")
        if self.kin.up_m > low_alt:
            high = self.params.get("LAND_SPD_HIGH_MS")
            return high if high > 0 else self.params.get("WP_SPD_DN")
        return max(0.1, self.params.get("LAND_SPD_MS"))

    def _physics(self, dt: float, now: float) -> None:
        k = self.kin
        wind_e, wind_n = self.wind_en()
        acc = max(0.5, self.params.get("WP_ACC"))
        up = max(0.2, self.params.get("WP_SPD_UP"))
        dn = max(0.2, self.params.get("WP_SPD_DN"))
        if not self.armed:
            if self.landed:
                k.stop()
            else:  # disarmed in the air: it falls
                k.vu_m_s = max(-20.0, k.vu_m_s - 9.8 * dt)
                k.up_m += k.vu_m_s * dt
                self._check_ground(now)
            self._battery(dt)
            return
        nav = self.nav
        if self.landed and now < self._spool_until_s:
            k.stop()  # motors spooling up before a takeoff
            self._battery(dt)
            return
        # the controller steers on its estimate; with a GPS glitch that is off by the glitch offset
        ge, gn = (0.0, 0.0)
        if self._glitch_active:
            ge, gn = self.faults.gps_glitch_offset_m
        if nav.kind == "idle":
            k.stop()
        elif nav.kind in ("hold", "goto"):
            speed = nav.speed_m_s or self.wp_speed()
            te, tn = nav.e - ge, nav.n - gn
            while nav.path and math.hypot(nav.path[0][0] - ge - k.east_m, nav.path[0][1] - gn - k.north_m) < 2.0:
                nav.path.pop(0)  # Dijkstra's moves on to the next point within 2 m of this one
                nav.replan_at_s = 0.0
            if nav.path and now >= nav.replan_at_s:
                # Copter tracks each leg from point to point; this point-mass flies at the target
                # from wherever momentum left it, so the path is re-planned from there as it goes
                nav.replan_at_s = now + 0.5
                fresh = self._planner().path(self.est_en(), (nav.e, nav.n)) if self.oa_active() else None
                if fresh is not None:
                    nav.path = list(fresh[:-1])
            if nav.path:
                te, tn = nav.path[0][0] - ge, nav.path[0][1] - gn
            if nav.blocked_to is not None and now >= nav.replan_at_s:
                # Dijkstra's keeps trying (the fence or OA_TYPE may have changed)
                self.nav = nav = self.goto_nav(*nav.blocked_to)
            if nav.climb_first:
                # from the ground Copter climbs (nearly) vertically before it sets off
                if k.up_m < nav.u - 1.0:
                    te, tn = k.east_m, k.north_m
                else:
                    nav.climb_first = False
            k.step_to(dt, te, tn, nav.u, speed, acc, up, dn, wind_e, wind_n)
            self._face_travel_or_roi(nav.e, nav.n)
        elif nav.kind == "land":
            k.step_to(dt, nav.e - ge, nav.n - gn, 0.0, 2.0, acc, up, dn, wind_e, wind_n,
                      climb_m_s=-self._land_speed())
        elif nav.kind == "velocity":
            if now > nav.until_s:  # ArduCopter stops if velocity commands stop for 3 s
                nav.kind, nav.e, nav.n, nav.u = "hold", *self.est_en(), k.up_m
            else:
                k.step_velocity(dt, nav.ve, nav.vn, nav.vu, acc, wind_e, wind_n)
        elif nav.kind in ("manual", "circle"):
            # pilot throttle: low (no RC) descends, mid holds, high climbs
            thr = self.rc_throttle if self.rc_throttle > 900 else 1000
            pilot_dn = self.params.get("PILOT_SPD_DN") or self.params.get("PILOT_SPD_UP")
            if thr < 1400:
                vz = -pilot_dn
            elif thr > 1600:
                vz = self.params.get("PILOT_SPD_UP")
            else:
                vz = 0.0
            if nav.kind == "circle":
                r = max(1.0, self.params.get("CIRCLE_RADIUS_M"))
                rate = math.radians(self.params.get("CIRCLE_RATE") or 20.0)
                speed = min(self.wp_speed(), r * abs(rate))
                ang = math.atan2(k.east_m - nav.e, k.north_m - nav.n) + speed / r * dt
                te, tn = nav.e + r * math.sin(ang), nav.n + r * math.cos(ang)
                k.step_to(dt, te, tn, k.up_m, speed * 1.2, acc, up, dn, wind_e, wind_n, climb_m_s=vz)
            else:
                k.step_to(dt, nav.e - ge, nav.n - gn, k.up_m, self.wp_speed(), acc, up, dn, wind_e, wind_n,
                          climb_m_s=vz)
        if k.up_m <= 0.0 and k.vu_m_s <= 0.0:
            self._check_ground(now)
        elif k.up_m > 0.2:
            self.landed = False
            if k.up_m > 0.5:
                self.land_complete = False
        self._battery(dt)

    def _battery(self, dt: float) -> None:
        we, wn = self.wind_en()
        air = math.hypot(self.kin.ve_m_s - we, self.kin.vn_m_s - wn)
        self.battery.step(dt, self.armed, self.airborne, air, self.kin.vu_m_s)

    def _check_ground(self, now: float) -> None:
        k = self.kin
        if self.landed:
            k.up_m = 0.0
            return
        impact = -k.vu_m_s
        k.up_m = 0.0
        k.stop()
        self.landed = True
        self.send_text(SEV_INFO, f"SIM Hit ground at {impact:.6f} m/s")
        if self.armed and (self.nav.kind == "land"):
            self._disarm_at_s = now + 2.0  # land detector, then auto-disarm

    def _face_travel_or_roi(self, te: float, tn: float) -> None:
        k = self.kin
        if self.roi is not None:
            re_, rn = self.frame.to_en(self.roi[0], self.roi[1])
            if math.hypot(re_ - k.east_m, rn - k.north_m) > 0.5:
                k.yaw_deg = math.degrees(math.atan2(re_ - k.east_m, rn - k.north_m)) % 360.0
            return
        if k.groundspeed_m_s > 1.0 and int(self.params.get("WP_YAW_BEHAVIOR")) != 0:
            k.yaw_deg = k.course_deg

    # ------------------------------------------------------------------ flight logic
    def _flight_logic(self, now: float) -> None:
        if self._disarm_at_s is not None and now >= self._disarm_at_s:
            self._disarm_at_s = None
            if self.armed and self.landed:
                self.land_complete = True
                self.disarm(reason="land")
                return
        if self._glitch_active and not self.faults.gps_glitch_active:
            self._glitch_active = False
            self.send_text(SEV_CRITICAL, "Glitch cleared")
        if not self.armed:
            return
        if self.mode in (RTL, SMART_RTL) or (self.mode == AUTO and self.rtl_phase):
            self._rtl_step(now)
        self._auto_disarm_check(now)
        if self.mode == AUTO and self.mission_running:
            self._mission_step(now)

    def _auto_disarm_check(self, now: float) -> None:
        """Copter disarms after DISARM_DELAY s armed on the ground with the throttle at zero."""
        delay = self.params.get("DISARM_DELAY")
        idle = (self.armed and self.landed and self.land_complete and now >= self._spool_until_s
                and (self.nav.kind == "idle" or (self.nav.kind == "manual" and self.rc_throttle < 1100)))
        if not idle or delay <= 0:
            self._idle_since_s = None
            return
        if self._idle_since_s is None:
            self._idle_since_s = now
        elif now - self._idle_since_s >= delay:
            self._idle_since_s = None
            self.disarm(reason="auto")

    def on_gps_glitch_start(self) -> None:
        if not self._glitch_active:
            self._glitch_active = True
            self.send_text(SEV_CRITICAL, "GPS Glitch or Compass error")

    # ---- object avoidance (OA_TYPE 2): wp_nav legs go round the fence's zones
    def oa_active(self) -> bool:
        """Would Dijkstra's plan this leg?"""
        polygon_fence = failsafes.fence_enabled(self) and bool(
            int(self.params.get("FENCE_TYPE")) & failsafes.FENCE_TYPE_POLYGON)
        return self.oa.active(self.params.get("OA_TYPE"), polygon_fence)

    def _oa_needs_reboot(self) -> bool:
        return self.oa.needs_reboot(self.params.get("OA_TYPE"))

    def _planner(self) -> DijkstraPlanner:
        return self.oa.planner(self.params.get("OA_MARGIN_MAX"))

    def goto_nav(self, e: float, n: float, u: float, speed_m_s: float | None = None,
                 climb_first: bool = False) -> Nav:
        """A wp_nav leg to (e, n, u): straight, or round the fence when object avoidance is on.
        Without a path the vehicle stops where it is and says so, as Copter does."""
        nav = Nav("goto", e, n, u, speed_m_s=speed_m_s, climb_first=climb_first)
        if not self.oa_active():
            return nav
        here = self.est_en()
        path = self._planner().path(here, (e, n))
        if path is None:
            if self.oa.no_path_report_due(self.now):
                self.send_text(SEV_CRITICAL, "Dijkstra: could not find path")
            return Nav("hold", *here, self.kin.up_m, blocked_to=(e, n, u, speed_m_s, climb_first),
                        replan_at_s=self.now + 1.0)
        nav.path = list(path[:-1])
        return nav

    def reboot(self) -> None:
        """MAV_CMD_PREFLIGHT_REBOOT_SHUTDOWN: start again from power-on, parameters and the stored
        mission / fence / rally kept (they live in EEPROM / on the SD card)."""
        self.armed = False
        self.mode = STABILIZE
        self.nav = Nav()
        self.rtl_phase = ""
        self.mission_running = False
        self.mission_cur = 0
        self.roi = None
        self.wp_speed_override = None
        self.fence_enabled_runtime = None
        self.fence_breaches = 0
        self.fs_gcs = self.fs_battery_low = self.fs_battery_crit = False
        self.last_gcs_hb_s = None
        self.boot.restart(self.now)
        self.heartbeat_started = False
        self.booting = True
        self.origin_set = self.home_set = self.position_ok = False
        self.load_boot_params()

    # ---- RTL: climb to RTL_ALT_M, return to home (or nearest rally point), descend and land
    def _start_rtl(self) -> None:
        k = self.kin
        rtl_alt = max(self.params.get("RTL_ALT_M"), k.up_m + self.params.get("RTL_CLIMB_MIN_M"))
        self.rtl_target = self._rtl_destination()
        e, n = self.est_en()
        if self.landed:
            self.rtl_phase = "land"
            self.nav = Nav("land", e, n, 0.0)
            return
        self.rtl_phase = "climb"
        self.nav = Nav("goto", e, n, rtl_alt)

    def _rtl_destination(self) -> tuple[float, float]:
        best = (0.0, 0.0)
        e, n = self.est_en()
        best_d = math.hypot(e, n)
        for r in self.mission.lists[RALLY]:
            re_, rn = self.frame.to_en(r.lat, r.lon)
            d = math.hypot(re_ - e, rn - n)
            if d < best_d:
                best, best_d = (re_, rn), d
        return best

    def _rtl_step(self, now: float) -> None:
        k = self.kin
        e, n = self.est_en()
        if self.rtl_phase == "climb":
            if k.up_m >= self.nav.u - 0.5:
                self.rtl_phase = "return"
                speed = self.params.get("RTL_SPEED_MS") or None
                self.nav = self.goto_nav(*self.rtl_target, self.nav.u, speed_m_s=speed)
        elif self.rtl_phase == "return":
            if self.nav.blocked_to is not None or self.nav.path:
                return  # going round a zone, or stopped without a path (Dijkstra's error)
            if math.hypot(self.rtl_target[0] - e, self.rtl_target[1] - n) < 2.0 and k.groundspeed_m_s < 1.0:
                # hover over home for RTL_LOIT_TIME (ms) before descending, as Copter does
                self.rtl_phase = "loiter"
                self.nav = Nav("hold", *self.rtl_target, self.nav.u, until_s=now + self.params.get("RTL_LOIT_TIME") / 1000.0)
        elif self.rtl_phase == "loiter":
            if now >= self.nav.until_s:
                final = self.params.get("RTL_ALT_FINAL_M")
                if final > 0:
                    self.rtl_phase = "final"
                    self.nav = Nav("hold", *self.rtl_target, final)
                else:
                    self.rtl_phase = "land"
                    self.nav = Nav("land", *self.rtl_target, 0.0)

    # ---- AUTO
    def _mission_items(self) -> list[WireItem]:
        return self.mission.lists[MISSION]

    def _item_target(self, it: WireItem) -> tuple[float, float, float]:
        e, n = self.est_en()
        if it.x != 0 or it.y != 0:
            e, n = self.frame.to_en(it.lat, it.lon)
        if it.frame == 0:  # MSL
            u = it.z - self.home_alt_msl
        else:
            u = it.z
        if it.command in (16, 17, 18, 19, 82) and it.z == 0 and it.frame != 0:
            u = self.kin.up_m  # altitude 0 means "keep the current altitude" in Copter
        return e, n, u

    def start_mission_at(self, seq: int) -> None:
        """Begin executing the nav command at `seq` (and the DO commands it passes)."""
        items = self._mission_items()
        self.mission_complete = False
        self.rtl_phase = ""
        self._wp_reached_at = None
        seq, do_items, jumps = next_nav_item(items, seq, self._jump_counts)
        for j in jumps:
            self.send_text(SEV_INFO, f"Mission: {j} Jump")
        if seq >= len(items):
            for d in do_items:
                self._run_do(items[d], d)
            self._mission_done()
            return
        self.mission_cur = seq
        it = items[seq]
        self.send_text(SEV_INFO, f"Mission: {seq} {cmd_name(it.command)}")
        for d in do_items:
            self._run_do(items[d], d)
        self._start_nav(it)
        self.broadcast(telemetry.mission_current(self))

    def _run_do(self, it: WireItem, seq: int) -> None:
        self.send_text(SEV_INFO, f"Mission: {seq} {cmd_name(it.command)}")
        if it.command == 178 and it.param2 > 0:  # DO_CHANGE_SPEED
            self.wp_speed_override = it.param2
        elif it.command in (195, 201):
            self.roi = (it.lat, it.lon, it.z) if (it.x or it.y) else None
        elif it.command == 197:
            self.roi = None

    def _start_nav(self, it: WireItem) -> None:
        e, n, u = self._item_target(it)
        c = it.command
        if c == 22:  # TAKEOFF
            e, n = self.est_en()
            if self.landed:
                self.start_takeoff_spool()
            self.nav = Nav("goto", e, n, max(u, self.kin.up_m if not self.landed else u))
        elif c == 20:  # RTL
            self._start_rtl()
        elif c == 21:  # LAND
            self.nav = self.goto_nav(e, n, self.kin.up_m) if (it.x or it.y) else Nav("land", e, n, 0.0)
            self.rtl_phase = ""
        else:  # WAYPOINT, LOITER_*, SPLINE, DELAY: fly to the location
            self.nav = self.goto_nav(e, n, u, climb_first=self.landed)
            if self.landed:
                self.start_takeoff_spool()
        self.target_info = (*self.frame.to_latlon(self.nav.e, self.nav.n), self.nav.u)

    def _mission_step(self, now: float) -> None:
        items = self._mission_items()
        if self.mission_complete or not (0 < self.mission_cur < len(items)):
            return
        it = items[self.mission_cur]
        c = it.command
        k = self.kin
        e, n = self.est_en()
        if c == 22:
            # complete once at altitude and settled (~1.5 s even when it starts there, as recorded)
            if k.up_m >= self.nav.u - 1.0:
                if self._wp_reached_at is None:
                    self._wp_reached_at = now
                elif now - self._wp_reached_at >= TAKEOFF_SETTLE_S:
                    self._item_reached(announce=False)
            return
        if c == 20:
            return  # RTL finishes by landing and disarming
        if c == 21:
            if self.nav.kind == "goto" and math.hypot(self.nav.e - e, self.nav.n - n) < 1.0:
                self.nav = Nav("land", self.nav.e, self.nav.n, 0.0)
            return
        if self.nav.blocked_to is not None:
            return  # stopped: no path round the fence to this item
        dist = math.hypot(self.nav.e - e, self.nav.n - n)
        radius = max(0.5, self.params.get("WP_RADIUS_M"))
        if self._wp_reached_at is None:
            if dist <= radius and abs(self.nav.u - k.up_m) < 1.0:
                self._wp_reached_at = now
            else:
                return
        hold_s = {16: it.param1, 19: it.param1, 93: it.param1}.get(c, 0.0)
        if c == 17:
            return  # LOITER_UNLIM: stays until the GCS moves it on
        if now - self._wp_reached_at >= max(0.0, hold_s):
            self._item_reached(announce=True)

    def _item_reached(self, announce: bool) -> None:
        seq = self.mission_cur
        self.broadcast(mavlink.MAVLink_mission_item_reached_message(seq))
        if announce:
            self.send_text(SEV_INFO, f"Reached command #{seq}")
        self.start_mission_at(seq + 1)

    def _mission_done(self) -> None:
        self.mission_complete = True
        self.mission_cur = max(0, len(self._mission_items()) - 1)
        e, n = self.est_en()
        if self.landed and self.armed:
            self.disarm(reason="mission")
        else:
            self.nav = Nav("hold", e, n, self.kin.up_m)

    def _mission_changed(self, mission_type: int) -> None:
        if mission_type == MISSION:
            n = len(self._mission_items())
            if self.mission_cur >= n:
                self.mission_cur = 0
            self.mission_complete = False
        if mission_type == FENCE:
            failsafes.rebuild_fence(self)

    def _home_item(self) -> WireItem | None:
        if not self.home_set:
            return None
        return WireItem(16, 0, 0, 0, 0, 0, int(round(self.home_lat * 1e7)), int(round(self.home_lon * 1e7)),
                        float(self.home_alt_msl), 1)

    # ------------------------------------------------------------------ arming
    def arming_failures(self) -> list[str]:
        """Why arming would be refused now, in ArduCopter's words (empty when armable)."""
        out: list[str] = []
        if not self.position_ok:
            if self.boot.gyros_settling(self.now):
                out.append("Gyros inconsistent")
            out.append("Need Position Estimate")
            return out
        if failsafes.fence_enabled(self):
            if not self.home_set:
                out.append("Fence requires position")
            elif failsafes.fence_breached_now(self):
                out.append("Vehicle breaching Polygon fence")
        if self.battery.voltage_v < self.params.get("BATT_ARM_VOLT") > 0:
            out.append("Battery 1 below minimum arming voltage")
        if self._oa_needs_reboot():
            out.append("Dijkstra OA requires reboot")
        return out

    def arm(self, force: bool = False) -> tuple[int, list[str]]:
        if self.armed:
            return MAV_RESULT_ACCEPTED, []
        if not force:
            if self.mode in NOT_ARMABLE:
                return MAV_RESULT_FAILED, ["Arm: Mode not armable"]
            reasons = self.arming_failures()
            if reasons:
                return MAV_RESULT_FAILED, ["Arm: " + r for r in reasons]
        self.armed = True
        self.arm_time_s = self.now
        self._disarm_at_s = None
        if self.position_ok:
            # ArduCopter resets home to where it arms
            lat, lon = self.est_latlon()
            self.home_lat, self.home_lon = lat, lon
            self.home_set = True
        e, n = self.est_en()
        self.nav = Nav("idle", e, n, 0.0) if self.mode not in MANUAL_THROTTLE else Nav("manual", e, n, 0.0)
        return MAV_RESULT_ACCEPTED, []

    def start_takeoff_spool(self) -> None:
        """Copter spools its motors for ~2 s before it leaves the ground on a takeoff."""
        self._spool_until_s = self.now + 2.0

    def after_arm(self) -> None:
        self.broadcast(telemetry.gps_global_origin(self))
        self.broadcast(telemetry.home_position(self))
        self.send_text(SEV_INFO, "Arming motors")

    def disarm(self, reason: str = "gcs") -> None:
        if not self.armed:
            return
        self.armed = False
        self.land_complete = self.land_complete or self.landed
        self.send_text(SEV_INFO, "Disarming motors")
        self.nav = Nav("idle")
        self.rtl_phase = ""
        self.mission_running = False
        self.mission_cur = 0
        self.mission_complete = False
        self._jump_counts.clear()
        self.wp_speed_override = None
        self.target_info = None
        self._notify_param("MOT_THST_HOVER", self.params.get("MOT_THST_HOVER"))
        self.send_heartbeat()

    # ------------------------------------------------------------------ modes
    def set_mode(self, mode: int, announce_failure: bool = True) -> bool:
        """Change flight mode like Copter::set_mode; False (with ArduCopter's text) if refused."""
        if mode not in MODE_NAMES:
            self.send_text(SEV_WARNING, f"No such mode {mode}")
            return False
        if mode == self.mode and not (mode == AUTO and not self.mission_running and self.armed):
            return True
        name = MODE_NAMES[mode]
        if self.armed:
            if mode in REQUIRES_POSITION and not self.position_ok:
                self.send_text(SEV_WARNING, f"Mode change to {name} failed: requires position")
                return False
            if mode == AUTO:
                items = self._mission_items()
                if len(items) <= 1:
                    self.send_text(SEV_WARNING, f"Mode change to {name} failed: init failed")
                    return False
                if self.landed and not starts_with_takeoff(items):
                    self.send_text(SEV_CRITICAL, "Auto: Missing Takeoff Cmd")
                    self.send_text(SEV_WARNING, f"Mode change to {name} failed: init failed")
                    return False
        if failsafes.fence_enabled(self) and self.fence_breaches and self.armed:
            self.send_text(SEV_INFO, "Manual recovery started")
        prev = self.mode
        self.mode = mode
        self.send_heartbeat()  # ArduPilot announces the new mode before it starts acting on it
        self._enter_mode(prev)
        return True

    def _enter_mode(self, prev: int) -> None:
        mode = self.mode
        e, n = self.est_en()
        k = self.kin
        if prev == AUTO and mode != AUTO:
            self.mission_running = False
        if mode != RTL and not (mode == AUTO):
            self.rtl_phase = ""
        if mode != GUIDED:
            self.target_info = None if mode != AUTO else self.target_info
        if not self.armed:
            self.nav = Nav("idle")
            return
        if mode == GUIDED:
            self.nav = Nav("hold", e, n, k.up_m) if self.airborne else Nav("idle", e, n, 0.0)
        elif mode == AUTO:
            self.mission_running = True
            self.start_mission_at(self.mission_cur if self.mission_cur >= 1 else 1)
        elif mode == RTL:
            self._start_rtl()
        elif mode == LAND:
            self.nav = Nav("land", e, n, 0.0)
            if self.landed:
                self._disarm_at_s = self.now + 2.0
        elif mode == BRAKE:
            self.nav = Nav("hold", e, n, k.up_m)
        elif mode == SMART_RTL:  # no breadcrumbs kept: flies the plain RTL path
            self._start_rtl()
        elif mode == CIRCLE:
            r = max(1.0, self.params.get("CIRCLE_RADIUS_M"))
            yaw = math.radians(k.yaw_deg)
            self.nav = Nav("circle", e + r * math.sin(yaw), n + r * math.cos(yaw), k.up_m)
        else:
            self.nav = Nav("manual", e, n, k.up_m)

    def failsafe_action(self, action: str) -> None:
        """RTL / LAND as a failsafe asks (RTL falls back to LAND without a position)."""
        if not self.armed:
            return
        if self.landed:
            self.disarm(reason="failsafe")
            return
        if action == "RTL" and self.position_ok and self.home_set:
            if self.mode != RTL:
                self.set_mode(RTL)
        elif self.mode != LAND:
            self.set_mode(LAND)

    # ------------------------------------------------------------------ guided targets
    def guided_goto(self, lat: float, lon: float, alt_rel_m: float, speed_m_s: float | None = None) -> bool:
        if not failsafes.location_allowed(self, lat, lon, alt_rel_m):
            return False
        e, n = self.frame.to_en(lat, lon)
        if self.armed and (self.airborne or self.nav.kind != "idle"):
            self.nav = self.goto_nav(e, n, alt_rel_m, speed_m_s=speed_m_s)
            self.landed = False if self.armed else self.landed
        self.target_info = (lat, lon, alt_rel_m)
        return True

    # ------------------------------------------------------------------ incoming messages
    def handle_message(self, conn: GcsConnection, msg) -> None:
        from sim.vehicles import handlers

        handlers.handle(self, conn, msg)


def wall_unix_usec() -> int:
    return int(time.time() * 1e6)
