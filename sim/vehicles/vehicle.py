"""One simulated ArduCopter: boot, arming, modes, commands, missions, flight, failsafes.

It answers a GCS the way ArduCopter 4.8 does in ../shared/ardupilot (texts, results, message
order); see docs/sim.md for what is modelled and what is simplified. All times are vehicle
seconds from the fleet's clock (wall time x speedup), so timeouts scale with speedup.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from common.geo import LocalFrame
from common.modes import MANUAL_THROTTLE, MODE_NAMES, REQUIRES_POSITION, CopterMode
from common.values import Pose
from sim.vehicles import arming, failsafes, navigation, telemetry
from sim.vehicles.avoidance import ObjectAvoidance
from sim.vehicles.boot import BootSequence
from sim.vehicles.faults import VehicleFaults
from common.ardupilot_storage import WireItem
from sim.vehicles.mission_walk import cmd_name, next_nav_item, starts_with_takeoff
from sim.vehicles.mission_store import FENCE, MISSION, MissionStore
from sim.vehicles.navigation import Nav, ReturnState
from sim.vehicles.params import ParamStore
from sim.vehicles.ports import MAV_RESULT_ACCEPTED, MAV_RESULT_FAILED, SEV_CRITICAL, SEV_INFO, SEV_WARNING
from sim.vehicles.physics import Battery, Kinematics

if TYPE_CHECKING:
    from sim.vehicles.link import GcsConnection

STABILIZE, AUTO, GUIDED, RTL, CIRCLE, LAND, BRAKE, SMART_RTL = (
    CopterMode.STABILIZE, CopterMode.AUTO, CopterMode.GUIDED, CopterMode.RTL, CopterMode.CIRCLE, CopterMode.LAND,
    CopterMode.BRAKE, CopterMode.SMART_RTL)


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
        self.spool_until_s = 0.0
        self._idle_since_s: float | None = None
        self.nav = Nav()
        self.wp_speed_override: float | None = None
        self.roi: tuple[float, float, float] | None = None  # lat, lon, alt
        self.rc_throttle = 1000
        self._last_t = 0.0
        self._next_hb_s = 0.0
        self._next_timesync_s = 10.0
        self.disarm_at_s: float | None = None
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
        self.glitch_active = False
        self.rtl = ReturnState()
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
        if self.glitch_active:
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
            steps = max(1, int(math.ceil(dt_total / navigation.PHYSICS_STEP_S)))
            dt = dt_total / steps
            for _ in range(steps):
                navigation.step(self, dt, now)
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
        if arming.prearm_report_due(self, now):
            reasons = arming.failures(self)
            if reasons:
                self.send_text(SEV_CRITICAL, "PreArm: " + reasons[-1])

    def _set_origin(self) -> None:
        self.origin_set = True
        self.home_set = True
        self.broadcast(telemetry.gps_global_origin(self))
        self.broadcast(telemetry.home_position(self))
        self.send_text(SEV_INFO, "EKF3 IMU0 origin set")
        self._notify_param("MIS_TOTAL", float(self.mission.count(MISSION)))

    # ------------------------------------------------------------------ navigation (navigation.py)
    def wind_en(self) -> tuple[float, float]:
        return navigation.wind_en(self)

    def wp_speed(self) -> float:
        return navigation.wp_speed(self)

    def goto_nav(self, e: float, n: float, u: float, speed_m_s: float | None = None,
                 climb_first: bool = False) -> Nav:
        return navigation.goto_nav(self, e, n, u, speed_m_s, climb_first)

    def oa_active(self) -> bool:
        return navigation.oa_active(self)

    # ------------------------------------------------------------------ flight logic
    def _flight_logic(self, now: float) -> None:
        if self.disarm_at_s is not None and now >= self.disarm_at_s:
            self.disarm_at_s = None
            if self.armed and self.landed:
                self.land_complete = True
                self.disarm(reason="land")
                return
        if self.glitch_active and not self.faults.gps_glitch_active:
            self.glitch_active = False
            self.send_text(SEV_CRITICAL, "Glitch cleared")
        if not self.armed:
            return
        if self.mode in (RTL, SMART_RTL) or (self.mode == AUTO and self.rtl.phase):
            navigation.rtl_step(self, now)
        self._auto_disarm_check(now)
        if self.mode == AUTO and self.mission_running:
            self._mission_step(now)

    def _auto_disarm_check(self, now: float) -> None:
        """Copter disarms after DISARM_DELAY s armed on the ground with the throttle at zero."""
        delay = self.params.get("DISARM_DELAY")
        idle = (self.armed and self.landed and self.land_complete and now >= self.spool_until_s
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
        if not self.glitch_active:
            self.glitch_active = True
            self.send_text(SEV_CRITICAL, "GPS Glitch or Compass error")

    def reboot(self) -> None:
        """MAV_CMD_PREFLIGHT_REBOOT_SHUTDOWN: start again from power-on, parameters and the stored
        mission / fence / rally kept (they live in EEPROM / on the SD card)."""
        self.armed = False
        self.mode = STABILIZE
        self.nav = Nav()
        self.rtl.phase = ""
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
        self.rtl.phase = ""
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
            navigation.start_rtl(self)
        elif c == 21:  # LAND
            self.nav = self.goto_nav(e, n, self.kin.up_m) if (it.x or it.y) else Nav("land", e, n, 0.0)
            self.rtl.phase = ""
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
    def arm(self, force: bool = False) -> tuple[int, list[str]]:
        if self.armed:
            return MAV_RESULT_ACCEPTED, []
        refused = arming.refusals(self, force)
        if refused:
            return MAV_RESULT_FAILED, refused
        self.armed = True
        self.arm_time_s = self.now
        self.disarm_at_s = None
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
        self.spool_until_s = self.now + 2.0

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
        self.rtl.phase = ""
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
            self.rtl.phase = ""
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
            navigation.start_rtl(self)
        elif mode == LAND:
            self.nav = Nav("land", e, n, 0.0)
            if self.landed:
                self.disarm_at_s = self.now + 2.0
        elif mode == BRAKE:
            self.nav = Nav("hold", e, n, k.up_m)
        elif mode == SMART_RTL:  # no breadcrumbs kept: flies the plain RTL path
            navigation.start_rtl(self)
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
