"""What a simulated ArduCopter does with each message a GCS sends (results and texts as recorded)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from common.modes import MODE_NAMES, REQUIRES_POSITION, CopterMode
from sim.vehicles import failsafes, telemetry
from sim.vehicles.mission_walk import starts_with_takeoff
from sim.vehicles.navigation import Nav
from sim.vehicles.ports import (
    FORCE_ARM_MAGIC, FORCE_DISARM_MAGIC, MAV_RESULT_ACCEPTED, MAV_RESULT_DENIED, MAV_RESULT_FAILED,
    MAV_RESULT_UNSUPPORTED, SEV_CRITICAL, SEV_INFO,
)

AUTO, GUIDED = CopterMode.AUTO, CopterMode.GUIDED

if TYPE_CHECKING:
    from sim.vehicles.link import GcsConnection
    from sim.vehicles.ports import SimVehicle

# REQUEST_DATA_STREAM groups, as ArduCopter maps them (GCS_Mavlink.cpp STREAM_* tables)
STREAM_GROUPS: dict[int, tuple[int, ...]] = {
    1: (27, 116, 129, 29, 137),  # RAW_SENSORS: RAW_IMU, SCALED_IMU2/3, SCALED_PRESSURE(2)
    2: (1, 125, 152, 42, 24, 62, 162, 87),  # EXTENDED_STATUS
    3: (36, 65),  # RC_CHANNELS: SERVO_OUTPUT_RAW, RC_CHANNELS
    6: (33, 32),  # POSITION: GLOBAL_POSITION_INT, LOCAL_POSITION_NED
    10: (30, 164, 178),  # EXTRA1: ATTITUDE, SIMSTATE, AHRS2
    11: (74,),  # EXTRA2: VFR_HUD
    12: (163, 2, 168, 136, 147, 193, 241, 11030),  # EXTRA3: AHRS, SYSTEM_TIME, WIND, TERRAIN_REPORT,
    #                                             BATTERY_STATUS, EKF_STATUS_REPORT, VIBRATION, ESC
}
ALL_STREAMS = tuple(m for group in STREAM_GROUPS.values() for m in group)

GUIDED_LIKE = {GUIDED}


def handle(v: SimVehicle, conn: GcsConnection, msg) -> None:
    t = msg.get_type()
    target = getattr(msg, "target_system", None)
    if target not in (None, 0, v.sysid):
        return  # for another vehicle on a shared link
    fn = _HANDLERS.get(t)
    if fn is not None:
        fn(v, conn, msg)
    elif t.startswith("MISSION_"):
        v.mission.handle(conn, msg, v.now)


# ---------------------------------------------------------------- heartbeat / time
def _heartbeat(v: SimVehicle, conn: GcsConnection, msg) -> None:
    # like ArduPilot: any HEARTBEAT from MAV_GCS_SYSID (255) keeps the GCS failsafe away
    if msg.get_srcSystem() == int(v.params.get("MAV_GCS_SYSID")):
        v.last_gcs_hb_s = v.now


def _timesync(v: SimVehicle, conn: GcsConnection, msg) -> None:
    if msg.tc1 == 0:
        conn.send(mavlink.MAVLink_timesync_message(int(v.now * 1e9), msg.ts1))


# ---------------------------------------------------------------- params
def _param_request_read(v: SimVehicle, conn: GcsConnection, msg) -> None:
    if msg.param_index >= 0:
        hit = v.params.by_index(msg.param_index)
        if hit is None:
            conn.send(mavlink.MAVLink_param_error_message(msg.get_srcSystem(), msg.get_srcComponent(),
                                                          msg.param_id.encode(), msg.param_index, 1))
            return
        name, value, ptype = hit
        conn.send(mavlink.MAVLink_param_value_message(name.encode(), value, ptype, v.params.count, msg.param_index))
        return
    name = msg.param_id
    value = v.params.wire_value(name)
    if value is None:
        conn.send(mavlink.MAVLink_param_error_message(msg.get_srcSystem(), msg.get_srcComponent(),
                                                      name.encode(), -1, 1))
        return
    conn.send(v.param_value(name))


def _param_set(v: SimVehicle, conn: GcsConnection, msg) -> None:
    name = msg.param_id
    if not math.isfinite(msg.param_value):
        conn.send(mavlink.MAVLink_param_error_message(msg.get_srcSystem(), msg.get_srcComponent(),
                                                      name.encode(), -1, 2))
        return
    hit = v.params.set_wire(name, msg.param_value)
    if hit is None:
        conn.send(mavlink.MAVLink_param_error_message(msg.get_srcSystem(), msg.get_srcComponent(),
                                                      name.encode(), -1, 1))
        return
    _param_side_effects(v, name)
    v.broadcast(v.param_value(name))  # ArduPilot tells every GCS about a change


def _param_side_effects(v: SimVehicle, wire_name: str) -> None:
    if wire_name in ("MAV_SYSID", "SYSID_THISMAV"):
        v.sysid = int(v.params.get("MAV_SYSID"))
    elif wire_name == "SIM_BATT_VOLTAGE":
        volt = v.params.get("SIM_BATT_VOLTAGE")
        v.battery.forced_voltage_v = None if abs(volt - 12.6) < 1e-3 else volt
    elif wire_name == "BATT_CAPACITY":
        v.battery.capacity_mah = max(1.0, v.params.get("BATT_CAPACITY"))
    elif wire_name == "FENCE_ENABLE":
        v.fence_enabled_runtime = None


def _param_request_list(v: SimVehicle, conn: GcsConnection, msg) -> None:
    # ArduPilot prints its banner when a GCS asks for the parameter list
    v.send_text(SEV_INFO, "ArduCopter V4.8.0-dev (64a9c787)")
    v.send_text(SEV_INFO, "3d1219c7c4c5404aaa1f6d2a48adfda4")
    v.send_text(SEV_INFO, "Frame: QUAD/PLUS")
    telemetry.start_param_stream(v, conn)


# ---------------------------------------------------------------- streams
def _request_data_stream(v: SimVehicle, conn: GcsConnection, msg) -> None:
    ids = ALL_STREAMS if msg.req_stream_id == 0 else STREAM_GROUPS.get(msg.req_stream_id, ())
    rate = msg.req_message_rate
    for mid in ids:
        if msg.start_stop == 0 or rate <= 0:
            telemetry.set_interval(v, conn, mid, None)
        else:
            telemetry.set_interval(v, conn, mid, 1.0 / rate)


def _rc_override(v: SimVehicle, conn: GcsConnection, msg) -> None:
    thr = msg.chan3_raw
    v.rc_throttle = thr if thr not in (0, 65535) else 1000


def _set_mode_msg(v: SimVehicle, conn: GcsConnection, msg) -> None:
    # legacy SET_MODE: no COMMAND_ACK, the GCS confirms from HEARTBEAT
    if msg.base_mode & mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED:
        v.set_mode(int(msg.custom_mode))


def _set_position_target_global_int(v: SimVehicle, conn: GcsConnection, msg) -> None:
    if v.mode not in GUIDED_LIKE or not v.armed:
        return
    mask = msg.type_mask
    pos_ignored = (mask & 0b111) == 0b111
    vel_ignored = (mask & 0b111000) == 0b111000
    if not pos_ignored:
        lat, lon = msg.lat_int / 1e7, msg.lon_int / 1e7
        alt = _alt_rel(v, msg.coordinate_frame, msg.alt)
        v.guided_goto(lat, lon, alt)
    elif not vel_ignored:
        v.nav = Nav("velocity", ve=msg.vy, vn=msg.vx, vu=-msg.vz, until_s=v.now + 3.0)
        v.landed = False if v.kin.up_m > 0.2 or -msg.vz > 0 else v.landed


def _mission_set_current(v: SimVehicle, conn: GcsConnection, msg) -> None:
    _set_mission_current(v, int(msg.seq))


def _set_mission_current(v: SimVehicle, seq: int) -> bool:
    items = v.mission.lists[0]
    if not 0 <= seq < max(len(items), 1):
        return False
    v.mission_cur = seq
    v.mission_complete = False
    if v.mode == AUTO and v.mission_running and v.armed:
        v.start_mission_at(seq)
    else:
        v.broadcast(telemetry.mission_current(v))
    return True


def _alt_rel(v: SimVehicle, frame: int, alt: float) -> float:
    if frame in (0, 5):  # MSL
        return alt - v.home_alt_msl
    return alt


# ---------------------------------------------------------------- commands
def _command_long(v: SimVehicle, conn: GcsConnection, msg) -> None:
    p = [msg.param1, msg.param2, msg.param3, msg.param4, msg.param5, msg.param6, msg.param7]
    _command(v, conn, msg, msg.command, p, is_int=False, frame=3)


def _command_int(v: SimVehicle, conn: GcsConnection, msg) -> None:
    p = [msg.param1, msg.param2, msg.param3, msg.param4, msg.x, msg.y, msg.z]
    _command(v, conn, msg, msg.command, p, is_int=True, frame=msg.frame)


def _ack(v: SimVehicle, conn: GcsConnection, msg, command: int, result: int) -> None:
    conn.send(mavlink.MAVLink_command_ack_message(command, result, 0, 0, msg.get_srcSystem(), msg.get_srcComponent()))


def _command(v: SimVehicle, conn: GcsConnection, msg, cmd: int, p: list[float], is_int: bool, frame: int) -> None:
    after: list = []  # things ArduPilot sends after the ACK
    try:
        result = _run_command(v, conn, cmd, p, is_int, frame, after)
    except (ValueError, OverflowError):  # NaN or infinity where the command needs a whole number
        result, after = mavlink.MAV_RESULT_DENIED, []
    _ack(v, conn, msg, cmd, result)
    for fn in after:
        fn()


def _latlon(p: list[float], is_int: bool) -> tuple[float, float]:
    if is_int:
        return p[4] / 1e7, p[5] / 1e7
    return p[4], p[5]


def _on_earth(lat: float, lon: float) -> bool:
    return -90 <= lat <= 90 and -180 <= lon <= 180  # False for NaN too


def _cmd_component_arm_disarm(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                              after: list) -> int:
    """COMPONENT_ARM_DISARM."""
    if p[0] == 1:
        was_armed = v.armed
        result, texts = v.arm(force=int(p[1]) == FORCE_ARM_MAGIC)
        if result == MAV_RESULT_ACCEPTED and not was_armed:
            after.append(v.after_arm)  # no extra HEARTBEAT: the 1 Hz one shows it
        for text in texts:
            after.append(lambda t=text: v.send_text(SEV_CRITICAL, t))
        return result
    if p[0] == 0:
        if not v.armed:
            return MAV_RESULT_ACCEPTED
        if v.airborne and int(p[1]) != FORCE_DISARM_MAGIC:
            return MAV_RESULT_FAILED
        after.append(v.disarm)
        return MAV_RESULT_ACCEPTED
    return MAV_RESULT_DENIED


def _cmd_do_set_mode(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                     after: list) -> int:
    """DO_SET_MODE."""
    if not (int(p[0]) & mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED):
        return MAV_RESULT_UNSUPPORTED
    mode = int(p[1])
    # ArduPilot acks first, then its HEARTBEAT shows the new mode
    ok = _would_accept_mode(v, mode)
    if ok:
        after.append(lambda: v.set_mode(mode))
        return MAV_RESULT_ACCEPTED
    v.set_mode(mode)  # prints the refusal text
    return MAV_RESULT_FAILED


def _cmd_nav_takeoff(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                     after: list) -> int:
    """NAV_TAKEOFF."""
    if not v.armed or v.mode != GUIDED or v.airborne:
        return MAV_RESULT_FAILED
    alt = p[6]
    if alt <= 0:
        return MAV_RESULT_FAILED
    e, n = v.est_en()
    v.start_takeoff_spool()
    v.nav = Nav("goto", e, n, alt)
    v.target_info = (*v.est_latlon(), alt)
    return MAV_RESULT_ACCEPTED


def _cmd_mission_start(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                       after: list) -> int:
    """MISSION_START."""
    if not v.armed or len(v.mission.lists[0]) <= 1:
        return MAV_RESULT_FAILED
    first = int(p[0])
    if first > 0:
        v.mission_cur = first
    if v.mode != AUTO:
        return MAV_RESULT_ACCEPTED if v.set_mode(AUTO) else MAV_RESULT_FAILED
    if not v.mission_running:
        v.mission_running = True
        v.start_mission_at(max(1, v.mission_cur))
    return MAV_RESULT_ACCEPTED


def _cmd_do_reposition(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                       after: list) -> int:
    """DO_REPOSITION: COMMAND_INT only on ArduPilot."""
    if not is_int:
        return MAV_RESULT_UNSUPPORTED
    change_mode = int(p[1]) & 1
    if v.mode != GUIDED and not change_mode:
        return MAV_RESULT_DENIED
    if not v.home_set:
        return MAV_RESULT_FAILED
    lat, lon = _latlon(p, is_int)
    if not _on_earth(lat, lon):
        return MAV_RESULT_DENIED
    alt = _alt_rel(v, frame, p[6])
    if not failsafes.location_allowed(v, lat, lon, alt):
        return MAV_RESULT_FAILED
    if v.mode != GUIDED and not v.set_mode(GUIDED):
        return MAV_RESULT_FAILED
    speed = p[0] if p[0] > 0 else None
    return MAV_RESULT_ACCEPTED if v.guided_goto(lat, lon, alt, speed) else MAV_RESULT_FAILED


def _cmd_do_set_roi_location(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                             after: list) -> int:
    """DO_SET_ROI_LOCATION / DO_SET_ROI."""
    lat, lon = _latlon(p, is_int)
    if not _on_earth(lat, lon):
        return MAV_RESULT_DENIED
    if lat == 0 and lon == 0:
        v.roi = None
    else:
        v.roi = (lat, lon, _alt_rel(v, frame, p[6]))
    return MAV_RESULT_ACCEPTED


def _cmd_do_set_roi_none(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                         after: list) -> int:
    """DO_SET_ROI_NONE."""
    v.roi = None
    return MAV_RESULT_ACCEPTED


def _cmd_preflight_reboot_shutdown(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                                   after: list) -> int:
    """PREFLIGHT_REBOOT_SHUTDOWN: autopilot reboot (param1 1); refused while armed."""
    if int(p[0]) != 1:
        return MAV_RESULT_UNSUPPORTED
    if v.armed:
        return MAV_RESULT_FAILED
    after.append(v.reboot)
    return MAV_RESULT_ACCEPTED


def _cmd_do_fence_enable(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                         after: list) -> int:
    """DO_FENCE_ENABLE."""
    v.fence_enabled_runtime = int(p[0]) == 1
    v.fence_breaches = 0 if not v.fence_enabled_runtime else v.fence_breaches
    return MAV_RESULT_ACCEPTED


def _cmd_do_set_mission_current(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                                after: list) -> int:
    """DO_SET_MISSION_CURRENT: acked first, then the item (re)starts."""
    seq = int(p[0])
    if not 0 <= seq < max(len(v.mission.lists[0]), 1):
        return MAV_RESULT_FAILED
    after.append(lambda: _set_mission_current(v, seq))
    return MAV_RESULT_ACCEPTED


def _cmd_do_change_speed(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                         after: list) -> int:
    """DO_CHANGE_SPEED."""
    if p[1] > 0:
        v.wp_speed_override = p[1]
    return MAV_RESULT_ACCEPTED


def _cmd_nav_return_to_launch(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                              after: list) -> int:
    """NAV_RETURN_TO_LAUNCH."""
    return MAV_RESULT_ACCEPTED if v.set_mode(6) else MAV_RESULT_FAILED


def _cmd_nav_land(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                  after: list) -> int:
    """NAV_LAND."""
    return MAV_RESULT_ACCEPTED if v.set_mode(9) else MAV_RESULT_FAILED


def _cmd_set_message_interval(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                              after: list) -> int:
    """SET_MESSAGE_INTERVAL."""
    mid, interval_us = int(p[0]), p[1]
    if not telemetry.can_stream(mid):
        return MAV_RESULT_FAILED
    if interval_us < 0:
        telemetry.set_interval(v, conn, mid, None)
    elif interval_us == 0:
        telemetry.set_interval(v, conn, mid, telemetry.default_interval(mid))
    else:
        telemetry.set_interval(v, conn, mid, interval_us / 1e6)
    return MAV_RESULT_ACCEPTED


def _cmd_get_message_interval(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                              after: list) -> int:
    """GET_MESSAGE_INTERVAL."""
    mid = int(p[0])
    iv = conn.intervals.get(mid)
    after.append(lambda: conn.send(mavlink.MAVLink_message_interval_message(
        mid, -1 if iv is None else int(iv * 1e6))))
    return MAV_RESULT_ACCEPTED


def _cmd_request_message(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                         after: list) -> int:
    """REQUEST_MESSAGE: the message goes out before the ACK."""
    mid = int(p[0])
    if not telemetry.can_request(mid):
        return MAV_RESULT_FAILED
    m = telemetry.build(v, mid, force=True)
    if m is not None:
        conn.send(m)
    return MAV_RESULT_ACCEPTED


def _cmd_request_autopilot_capabilities(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                                        after: list) -> int:
    """REQUEST_AUTOPILOT_CAPABILITIES."""
    conn.send(telemetry.autopilot_version(v))
    return MAV_RESULT_ACCEPTED


def _cmd_get_home_position(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                           after: list) -> int:
    """GET_HOME_POSITION."""
    if v.home_set:
        conn.send(telemetry.home_position(v))
        return MAV_RESULT_ACCEPTED
    return MAV_RESULT_FAILED


def _cmd_do_set_home(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                     after: list) -> int:
    """DO_SET_HOME."""
    if int(p[0]) == 1:
        if not v.position_ok:
            return MAV_RESULT_FAILED
        v.home_lat, v.home_lon = v.est_latlon()
    else:
        lat, lon = _latlon(p, is_int)
        if not _on_earth(lat, lon):  # as ArduPilot's set_home: a home it cannot fly to is refused
            return MAV_RESULT_DENIED
        v.home_lat, v.home_lon = lat, lon
        if frame in (0, 5):
            v.home_alt_msl = p[6]
    v.home_set = True
    after.append(lambda: v.broadcast(telemetry.home_position(v)))
    return MAV_RESULT_ACCEPTED


def _cmd_do_pause_continue(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                           after: list) -> int:
    """DO_PAUSE_CONTINUE: AUTO only; pause holds position, continue resumes the item."""
    if v.mode != AUTO or not v.armed:
        return MAV_RESULT_FAILED
    if int(p[0]) == 0:
        e, n = v.est_en()
        v.mission_running = False
        v.nav = Nav("hold", e, n, v.kin.up_m)
    else:
        v.mission_running = True
        v.start_mission_at(max(1, v.mission_cur))
    return MAV_RESULT_ACCEPTED


def _cmd_condition_yaw(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                       after: list) -> int:
    """CONDITION_YAW: param1 angle, param4 1 = relative."""
    if not v.armed:
        return MAV_RESULT_FAILED
    v.kin.yaw_deg = (v.kin.yaw_deg + p[0] * (1 if p[2] >= 0 else -1)) % 360 if int(p[3]) == 1 else p[0] % 360
    v.roi = None
    return MAV_RESULT_ACCEPTED


def _cmd_do_orbit(v: SimVehicle, conn: GcsConnection, p: list[float], is_int: bool, frame: int,
                  after: list) -> int:
    """DO_ORBIT: not on Copter."""
    return MAV_RESULT_UNSUPPORTED


# MAV_CMD -> what the vehicle does with it, as COMMAND_LONG or COMMAND_INT: each returns the
# MAV_RESULT and appends to `after` what ArduPilot sends after the ACK. Not listed: UNSUPPORTED.
COMMANDS: dict[int, Callable[..., int]] = {
    400: _cmd_component_arm_disarm,
    176: _cmd_do_set_mode,
    22: _cmd_nav_takeoff,
    300: _cmd_mission_start,
    192: _cmd_do_reposition,
    195: _cmd_do_set_roi_location,
    201: _cmd_do_set_roi_location,
    197: _cmd_do_set_roi_none,
    246: _cmd_preflight_reboot_shutdown,
    207: _cmd_do_fence_enable,
    224: _cmd_do_set_mission_current,
    178: _cmd_do_change_speed,
    20: _cmd_nav_return_to_launch,
    21: _cmd_nav_land,
    511: _cmd_set_message_interval,
    510: _cmd_get_message_interval,
    512: _cmd_request_message,
    520: _cmd_request_autopilot_capabilities,
    410: _cmd_get_home_position,
    179: _cmd_do_set_home,
    193: _cmd_do_pause_continue,
    115: _cmd_condition_yaw,
    34: _cmd_do_orbit,
}


def _run_command(v: SimVehicle, conn: GcsConnection, cmd: int, p: list[float], is_int: bool, frame: int,
                 after: list) -> int:
    run = COMMANDS.get(cmd)
    return run(v, conn, p, is_int, frame, after) if run is not None else MAV_RESULT_UNSUPPORTED


def _would_accept_mode(v: SimVehicle, mode: int) -> bool:
    if mode not in MODE_NAMES:
        return False
    if not v.armed:
        return True
    if mode in REQUIRES_POSITION and not v.position_ok:
        return False
    if mode == AUTO:
        items = v.mission.lists[0]
        if len(items) <= 1 or (v.landed and not starts_with_takeoff(items)):
            return False
    return True


_HANDLERS = {
    "HEARTBEAT": _heartbeat,
    "TIMESYNC": _timesync,
    "PARAM_REQUEST_READ": _param_request_read,
    "PARAM_REQUEST_LIST": _param_request_list,
    "PARAM_SET": _param_set,
    "REQUEST_DATA_STREAM": _request_data_stream,
    "COMMAND_LONG": _command_long,
    "COMMAND_INT": _command_int,
    "SET_MODE": _set_mode_msg,
    "RC_CHANNELS_OVERRIDE": _rc_override,
    "SET_POSITION_TARGET_GLOBAL_INT": _set_position_target_global_int,
    "MISSION_SET_CURRENT": _mission_set_current,
}
