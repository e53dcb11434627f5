"""Telemetry a simulated ArduCopter sends: message builders and per-link stream scheduling.

Each link keeps msgid -> interval (vehicle seconds) like an ArduPilot channel; every tick the
due messages are built once per vehicle (cached for the tick, shared by all links) and packed
per link. Shapes and constant fields follow the first messages of the recorded traces.
"""
from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Callable

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from common.modes import GUIDED_FLAG_MODES, CopterMode
from sim.vehicles import failsafes

if TYPE_CHECKING:
    from sim.vehicles.link import GcsConnection
    from sim.vehicles.ports import SimVehicle

M = mavlink

# SYS_STATUS sensor bitmasks as SITL reports them (pre-arm vs flying differ in 'enabled/health')
_SENSORS_PRESENT = 1399979055
_SENSORS_ENABLED = 1398930479
_SENSORS_HEALTH = 1467087919
_FLIGHT_SW_VERSION = 67633152  # 4.8.0-dev
_CUSTOM_VERSION = [54, 52, 97, 57, 99, 55, 56, 55]  # "64a9c787"

# modes that land and disarm by themselves: on the ground afterwards the position controller is off
_LANDS_ITSELF = (CopterMode.AUTO, CopterMode.RTL, CopterMode.LAND, CopterMode.SMART_RTL, CopterMode.AUTO_RTL)


def heartbeat(v: SimVehicle) -> M.MAVLink_message:
    if v.booting:
        base, status = 89, M.MAV_STATE_BOOT
    else:
        # GUIDED_ENABLED mirrors "position controller active": true in position modes, but not
        # once RTL/LAND/AUTO have landed and disarmed (both traces: RTL disarmed -> 81)
        pos_active = v.mode in GUIDED_FLAG_MODES and (v.armed or v.mode not in _LANDS_ITSELF)
        base = 81 | (8 if pos_active else 0)
        if v.fs_gcs or v.fs_battery_low or v.fs_battery_crit:
            status = M.MAV_STATE_CRITICAL
        elif v.armed and not v.land_complete:
            status = M.MAV_STATE_ACTIVE
        else:
            status = M.MAV_STATE_STANDBY
    if v.armed:
        base |= M.MAV_MODE_FLAG_SAFETY_ARMED
    return M.MAVLink_heartbeat_message(M.MAV_TYPE_QUADROTOR, M.MAV_AUTOPILOT_ARDUPILOTMEGA, base, v.mode, status, 3)


def home_position(v: SimVehicle) -> M.MAVLink_message:
    return M.MAVLink_home_position_message(
        int(round(v.home_lat * 1e7)), int(round(v.home_lon * 1e7)), int(round(v.home_alt_msl * 1000)),
        0.0, 0.0, 0.0, [math.nan] * 4, 0.0, 0.0, 0.0, int(v.now * 1e6))


def gps_global_origin(v: SimVehicle) -> M.MAVLink_message:
    lat, lon = v.frame.lat0, v.frame.lon0
    return M.MAVLink_gps_global_origin_message(int(round(lat * 1e7)), int(round(lon * 1e7)),
                                               int(round(v.home_alt_msl * 1000)), int(v.now * 1e6))


def autopilot_version(v: SimVehicle) -> M.MAVLink_message:
    return M.MAVLink_autopilot_version_message(64495, _FLIGHT_SW_VERSION, 0, 0, 0, _CUSTOM_VERSION, [0] * 8,
                                               [0] * 8, 0, 0, 0, [0] * 18)


def mission_current(v: SimVehicle) -> M.MAVLink_message:
    n = len(v.mission.lists[0])
    total = max(0, n - 1)
    if total == 0:
        state = 1  # MISSION_STATE_NO_MISSION
    elif v.mode == 3 and v.mission_running and v.armed:
        state = 5 if v.mission_complete else 3
    elif v.mode == 3 and v.armed:
        state = 4  # paused (DO_PAUSE_CONTINUE)
    else:
        state = 2
    return M.MAVLink_mission_current_message(v.mission_cur, total, state, 1 if v.mode == 3 else 0)


def _global_position_int(v: SimVehicle) -> M.MAVLink_message:
    k = v.kin
    lat, lon = v.est_latlon()
    return M.MAVLink_global_position_int_message(
        v.time_boot_ms, int(round(lat * 1e7)), int(round(lon * 1e7)), int(round((v.home_alt_msl + k.up_m) * 1000)),
        int(round(k.up_m * 1000)), int(round(k.vn_m_s * 100)), int(round(k.ve_m_s * 100)),
        int(round(-k.vu_m_s * 100)), int(round(k.yaw_deg * 100)) % 36000)


def _local_position_ned(v: SimVehicle) -> M.MAVLink_message | None:
    if not v.origin_set:
        return None
    k = v.kin
    e, n = v.est_en()
    oe, on = v.frame.to_en(v.frame.lat0, v.frame.lon0)
    return M.MAVLink_local_position_ned_message(v.time_boot_ms, n - on, e - oe, -k.up_m, k.vn_m_s, k.ve_m_s,
                                                -k.vu_m_s)


def _attitude(v: SimVehicle) -> M.MAVLink_message:
    k = v.kin
    roll, pitch = lean(v)
    yaw = math.radians(k.yaw_deg)
    if yaw > math.pi:
        yaw -= 2 * math.pi
    return M.MAVLink_attitude_message(v.time_boot_ms, roll, pitch, yaw, 0.0, 0.0, 0.0)


def lean(v: SimVehicle) -> tuple[float, float]:
    """Roll/pitch (rad) a quad needs to fly its air velocity: ~ atan(drag·v²/g) in body axes."""
    k = v.kin
    we, wn = v.wind_en()
    ae, an = k.ve_m_s - we, k.vn_m_s - wn
    yaw = math.radians(k.yaw_deg)
    fwd = ae * math.sin(yaw) + an * math.cos(yaw)
    right = ae * math.cos(yaw) - an * math.sin(yaw)
    c = 0.0035
    pitch = -math.atan(c * fwd * abs(fwd))
    roll = math.atan(c * right * abs(right))
    return roll, pitch


def _vfr_hud(v: SimVehicle) -> M.MAVLink_message:
    k = v.kin
    we, wn = v.wind_en()
    air = math.hypot(k.ve_m_s - we, k.vn_m_s - wn)
    throttle = 0 if not v.armed else (10 if v.landed else 38 + int(min(30, air)))
    return M.MAVLink_vfr_hud_message(air, k.groundspeed_m_s, int(k.yaw_deg) % 360, throttle,
                                     v.home_alt_msl + k.up_m, k.vu_m_s)


def _sys_status(v: SimVehicle) -> M.MAVLink_message:
    b = v.battery
    return M.MAVLink_sys_status_message(
        _SENSORS_PRESENT, _SENSORS_ENABLED if v.armed else 1380031535,
        _SENSORS_HEALTH if v.position_ok else 1196530735, 0, int(round(b.voltage_v * 1000)),
        int(round(b.current_a * 100)), b.remaining_pct, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def _battery_status(v: SimVehicle) -> M.MAVLink_message:
    b = v.battery
    volts = [int(round(b.voltage_v * 1000))] + [65535] * 9
    frac = b.remaining_frac
    charge = 1 if frac > 0.3 else (2 if frac > 0.15 else 3)
    if v.fs_battery_crit:
        charge = 4
    return M.MAVLink_battery_status_message(
        0, 0, 0, 32767, volts, int(round(b.current_a * 100)), int(b.consumed_mah), int(b.energy_wh * 36),
        b.remaining_pct, 0, charge, [0, 0, 0, 0], 0, 0)


def _gps_raw_int(v: SimVehicle) -> M.MAVLink_message:
    k = v.kin
    lat, lon = v.est_latlon()
    alt = int(round((v.home_alt_msl + k.up_m) * 1000))
    return M.MAVLink_gps_raw_int_message(
        int(v.now * 1e6), 6, int(round(lat * 1e7)), int(round(lon * 1e7)), alt, 121, 200,
        int(round(k.groundspeed_m_s * 100)), int(round(k.course_deg * 100)) % 36000, 10, alt, 300, 300, 0, 0, 0)


def _ekf_status_report(v: SimVehicle) -> M.MAVLink_message:
    flags = 831 if v.position_ok else 167
    return M.MAVLink_ekf_status_report_message(flags, 0.005, 0.006, 0.0006, 0.004, 0.0, 0.0)


def _system_time(v: SimVehicle) -> M.MAVLink_message:
    return M.MAVLink_system_time_message(int(time.time() * 1e6), v.time_boot_ms)


def _nav_controller_output(v: SimVehicle) -> M.MAVLink_message:
    k = v.kin
    nav = v.nav
    e, n = v.est_en()
    if nav.kind in ("goto", "hold"):
        de, dn = nav.e - e, nav.n - n
        dist = math.hypot(de, dn)
        bearing = int(math.degrees(math.atan2(de, dn))) % 360
        alt_err = nav.u - k.up_m
    else:
        dist, bearing, alt_err = 0.0, int(k.yaw_deg) % 360, 0.0
    roll, pitch = lean(v)
    return M.MAVLink_nav_controller_output_message(math.degrees(roll), math.degrees(pitch), int(k.yaw_deg) % 360,
                                                   bearing, min(65535, int(dist)), alt_err, 0.0, 0.0)


def _position_target_global_int(v: SimVehicle) -> M.MAVLink_message | None:
    if v.target_info is None or v.mode not in (3, 4) or not v.armed:
        return None
    lat, lon, alt = v.target_info
    return M.MAVLink_position_target_global_int_message(
        v.time_boot_ms, 0, 65016, int(round(lat * 1e7)), int(round(lon * 1e7)), v.home_alt_msl + alt,
        0, 0, 0, 0, 0, 0, 0, 0)


def _wind(v: SimVehicle) -> M.MAVLink_message | None:
    if not v.origin_set:
        return None
    spd = v.params.get("SIM_WIND_SPD")
    direction = v.params.get("SIM_WIND_DIR") if spd > 0 else 180.0
    if direction > 180:
        direction -= 360
    return M.MAVLink_wind_message(-180.0 if spd <= 0 else direction, spd, 0.0)


def _fence_status(v: SimVehicle) -> M.MAVLink_message | None:
    if not failsafes.fence_enabled(v):
        return None
    return M.MAVLink_fence_status_message(1 if v.fence_breaches else 0, v.fence_breach_count,
                                          1 if v.fence_breaches else 0, v.fence_breach_time_ms, 1)


def _power_status(v: SimVehicle) -> M.MAVLink_message:
    return M.MAVLink_power_status_message(5000, 0, 0)


def _meminfo(v: SimVehicle) -> M.MAVLink_message:
    return M.MAVLink_meminfo_message(0, 65535, 131072)


def _servo_output_raw(v: SimVehicle) -> M.MAVLink_message:
    pwm = 1000 if not v.armed else (1100 if v.landed else 1500)
    return M.MAVLink_servo_output_raw_message(int(v.now * 1e6) & 0xFFFFFFFF, 0, pwm, pwm, pwm, pwm,
                                              0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def _rc_channels(v: SimVehicle) -> M.MAVLink_message:
    return M.MAVLink_rc_channels_message(v.time_boot_ms, 16, 1500, 1500, v.rc_throttle, 1500, 1800, 1000, 1000,
                                         1800, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def _simstate(v: SimVehicle) -> M.MAVLink_message:
    roll, pitch = lean(v)
    lat, lon = v.truth.lat, v.truth.lon
    return M.MAVLink_simstate_message(roll, pitch, math.radians(v.kin.yaw_deg), 0.0, 0.0, -9.81, 0.0, 0.0, 0.0,
                                      int(lat * 1e7), int(lon * 1e7))


def _ahrs2(v: SimVehicle) -> M.MAVLink_message:
    roll, pitch = lean(v)
    lat, lon = v.est_latlon()
    return M.MAVLink_ahrs2_message(roll, pitch, math.radians(v.kin.yaw_deg), v.home_alt_msl + v.kin.up_m,
                                   int(lat * 1e7), int(lon * 1e7))


def _ahrs(v: SimVehicle) -> M.MAVLink_message:
    return M.MAVLink_ahrs_message(0.0, 0.0, 0.0, 0.0, 0.0, 0.002, 0.003)


def _vibration(v: SimVehicle) -> M.MAVLink_message:
    return M.MAVLink_vibration_message(int(v.now * 1e6), 0.02, 0.02, 0.02, 0, 0, 0)


def _esc(v: SimVehicle) -> M.MAVLink_message:
    rpm = 0 if not v.armed else 9000
    amps = int(v.battery.current_a * 25)
    return M.MAVLink_esc_telemetry_1_to_4_message([0] * 4, [int(v.battery.voltage_v * 100)] * 4, [amps] * 4,
                                                  [0] * 4, [rpm] * 4, [0] * 4)


def _raw_imu(v: SimVehicle) -> M.MAVLink_message:
    return M.MAVLink_raw_imu_message(int(v.now * 1e6), 0, 0, -1000, 0, 0, 0, 200, 50, -400, 0, 4500)


def _scaled_imu(cls) -> Callable[[SimVehicle], M.MAVLink_message]:
    return lambda v: cls(v.time_boot_ms, 0, 0, -1000, 0, 0, 0, 200, 50, -400, 4500)


def _scaled_pressure(cls) -> Callable[[SimVehicle], M.MAVLink_message]:
    def build(v: SimVehicle) -> M.MAVLink_message:
        press = 1013.25 * (1 - 2.25577e-5 * (v.home_alt_msl + v.kin.up_m)) ** 5.25588
        return cls(v.time_boot_ms, press, 0.0, 4500, 0)
    return build


def _terrain_report(v: SimVehicle) -> M.MAVLink_message:
    # no terrain database: like SITL without one (spacing 0, nothing loaded); height above home
    lat, lon = v.est_latlon()
    return M.MAVLink_terrain_report_message(int(lat * 1e7), int(lon * 1e7), 0, 0.0,
                                            v.home_alt_msl + v.kin.up_m, 336, 0)


def _home_position_opt(v: SimVehicle) -> M.MAVLink_message | None:
    return home_position(v) if v.home_set else None


def _origin_opt(v: SimVehicle) -> M.MAVLink_message | None:
    return gps_global_origin(v) if v.origin_set else None


def _extended_sys_state(v: SimVehicle) -> M.MAVLink_message:
    landed = 1 if v.landed else 2
    if v.armed and v.airborne and v.nav.kind == "land":
        landed = 4
    return M.MAVLink_extended_sys_state_message(0, landed)


BUILDERS: dict[int, Callable[[SimVehicle], M.MAVLink_message | None]] = {
    0: heartbeat,
    1: _sys_status,
    2: _system_time,
    24: _gps_raw_int,
    27: _raw_imu,
    29: _scaled_pressure(M.MAVLink_scaled_pressure_message),
    30: _attitude,
    32: _local_position_ned,
    33: _global_position_int,
    36: _servo_output_raw,
    42: mission_current,
    49: _origin_opt,
    62: _nav_controller_output,
    65: _rc_channels,
    74: _vfr_hud,
    87: _position_target_global_int,
    116: _scaled_imu(M.MAVLink_scaled_imu2_message),
    125: _power_status,
    129: _scaled_imu(M.MAVLink_scaled_imu3_message),
    137: _scaled_pressure(M.MAVLink_scaled_pressure2_message),
    147: _battery_status,
    148: autopilot_version,
    152: _meminfo,
    162: _fence_status,
    163: _ahrs,
    164: _simstate,
    168: _wind,
    178: _ahrs2,
    193: _ekf_status_report,
    241: _vibration,
    242: _home_position_opt,
    245: _extended_sys_state,
    11030: _esc,
    136: _terrain_report,
}


def can_stream(msgid: int) -> bool:
    return msgid in BUILDERS


def can_request(msgid: int) -> bool:
    return msgid in BUILDERS


def default_interval(msgid: int) -> float | None:
    return None  # SITL's TCP link streams nothing until asked


def build(v: SimVehicle, msgid: int, force: bool = False) -> M.MAVLink_message | None:
    """The message for `msgid` now (cached within one tick), or None when not applicable."""
    if v.telemetry_cache_tick != v.tick_seq:
        v.telemetry_cache.clear()
        v.telemetry_cache_tick = v.tick_seq
    cache = v.telemetry_cache
    if msgid in cache:
        return cache[msgid]
    fn = BUILDERS.get(msgid)
    msg = fn(v) if fn is not None else None
    cache[msgid] = msg
    return msg


def set_interval(v: SimVehicle, conn: GcsConnection, msgid: int, interval_s: float | None) -> None:
    if interval_s is None or interval_s <= 0:
        conn.intervals.pop(msgid, None)
        conn.next_due.pop(msgid, None)
        return
    conn.intervals[msgid] = interval_s
    conn.next_due[msgid] = min(conn.next_due.get(msgid, v.now), v.now + interval_s)


def send_due(v: SimVehicle, now: float) -> None:
    """Send every stream message that is due on each link; then continue a parameter list."""
    for conn in v.connections:
        due = conn.next_due
        if due:
            intervals = conn.intervals
            for mid, t in due.items():
                if now >= t:
                    iv = intervals[mid]
                    nt = t + iv
                    due[mid] = nt if nt > now else now + iv
                    msg = build(v, mid)
                    if msg is not None:
                        conn.send(msg)
        if conn.param_stream is not None:
            _continue_param_stream(v, conn)


PARAM_LIST_RATE_HZ = 2300.0
PARAM_LIST_BURST = 20  # at least this many PARAM_VALUEs per tick while streaming a list


def start_param_stream(v: SimVehicle, conn: GcsConnection) -> None:
    conn.param_stream = 0  # type: ignore[attr-defined]
    conn.param_stream_t = v.now  # type: ignore[attr-defined]


def _continue_param_stream(v: SimVehicle, conn: GcsConnection) -> None:
    i = conn.param_stream  # type: ignore[attr-defined]
    # SITL lists ~2300 parameters per vehicle second; at least a burst per tick at any speedup
    budget = int(PARAM_LIST_RATE_HZ * max(0.0, v.now - conn.param_stream_t))
    conn.param_stream_t = v.now  # type: ignore[attr-defined]
    end = min(v.params.count, i + max(PARAM_LIST_BURST, budget))
    for idx in range(i, end):
        name, value, ptype = v.params.by_index(idx)  # type: ignore[misc]
        conn.send(M.MAVLink_param_value_message(name.encode(), value, ptype, v.params.count, idx))
    conn.param_stream = None if end >= v.params.count else end  # type: ignore[attr-defined]
