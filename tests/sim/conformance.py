"""Replay the GCS side of the recorded ArduCopter sessions against the simulator and compare.

The two GCS scripts in ../shared/ardupilot (gcs_script_session1.py, gcs_script_session2.py)
are ported step for step below (same phases, same messages, same waits in vehicle time). Both the
recorded trace and the replay are reduced by the same `key_events` to what a GCS relies on:
command results, mission-protocol messages, parameter answers, texts, mode/arm/status changes,
items reached. Those must match in content and order per phase, and their vehicle time since
the GCS's last message must agree within a tolerance. The autonomous start-up sequence is
compared on its own, against time since boot.

The reduced traces live in tests/sim/data/ so the test runs without ../shared; regenerate with
`python -m tests.sim.conformance /path/to/shared/ardupilot`.
"""
from __future__ import annotations

import asyncio
import gzip
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from tests.sim.gcs import TestGcs

DATA = Path(__file__).with_name("data")
SESSIONS = {1: ("session1_mission_flow", 1.0), 2: ("session2_modes_roi_fence_battery", 3.0)}
m = mavlink

# Texts that depend on SITL's own simulation or periodic timers rather than the protocol
IGNORED_TEXT_PREFIXES = ("RCInput:", "RC7:", "PreArm:", "EKF3 IMU0 MAG0 in-flight", "EKF3 IMU1 MAG0 in-flight")
# Parameters the GCS scripts ask for; only answers about these are compared
_NUM = re.compile(r"\d+\.\d+|\d+")


# The start-up sequence runs on the vehicle's own clock, whatever the GCS does meanwhile: it is
# compared as one sequence against time since boot, not interleaved with the GCS's phases.
BOOT_TEXTS = frozenset({
    "Calibrating barometer", "Barometer 1 calibration complete", "Barometer 2 calibration complete",
    "ArduPilot Ready", "AHRS: DCM active", "EKF3 IMU0 initialised", "EKF3 IMU1 initialised", "AHRS: EKF3 active",
    "EKF3 IMU0 tilt alignment complete", "EKF3 IMU1 tilt alignment complete",
    "EKF3 IMU0 MAG0 initial yaw alignment complete", "EKF3 IMU1 MAG0 initial yaw alignment complete",
    "GPS 1: probing for u-blox at 230400 baud", "GPS 1: detected u-blox", "EKF3 IMU0 origin set",
    "EKF3 IMU1 origin set", "Field Elevation Set: 10m", "EKF3 IMU0 is using GPS", "EKF3 IMU1 is using GPS",
})


@dataclass(frozen=True)
class Event:
    phase: str
    t_s: float  # vehicle seconds since the GCS last sent something (other than a heartbeat)
    key: tuple
    t_abs_s: float = 0.0  # vehicle seconds since the first record
    boot: bool = False  # part of the autonomous start-up sequence


def key_of(rec: dict, asked: set[str]) -> tuple | None:
    """The comparable content of one received message (a trace record or a replay record)."""
    t = rec["mavpackettype"]
    if t == "COMMAND_ACK":
        return (t, rec["command"], rec["result"])
    if t in ("MISSION_REQUEST", "MISSION_REQUEST_INT"):
        return (t, rec.get("mission_type", 0), rec["seq"])
    if t == "MISSION_ACK":
        return (t, rec.get("mission_type", 0), rec["type"])
    if t == "MISSION_COUNT":
        return (t, rec.get("mission_type", 0), rec["count"])
    if t == "MISSION_ITEM_INT":
        return (t, rec.get("mission_type", 0), rec["seq"], rec["command"], rec["frame"])
    if t == "MISSION_ITEM_REACHED":
        return (t, rec["seq"])
    if t == "PARAM_ERROR":
        return (t, rec["param_id"], rec["error"])
    if t == "PARAM_VALUE":
        if rec["param_id"] in asked and rec.get("param_index") == 65535:
            return (t, rec["param_id"], round(rec["param_value"], 3))
        return None
    if t == "STATUSTEXT":
        text = rec["text"]
        if text.startswith(IGNORED_TEXT_PREFIXES):
            return None
        return (t, rec["severity"], _NUM.sub("#", text) if text.startswith(("SIM Hit ground", "Battery 1 is")) else text)
    if t == "HEARTBEAT":
        return (t, rec["base_mode"], rec["custom_mode"], rec["system_status"])
    return None


def key_events(records: list[dict], speedup: float) -> list[Event]:
    """Records (t wall s, phase, dir, message fields) -> comparable events, t in vehicle s from phase start."""
    out: list[Event] = []
    asked: set[str] = set()
    last_hb = None
    t0 = records[0]["t"] if records else 0.0
    anchor = t0
    for rec in records:
        phase = rec["phase"]
        if rec["dir"] == "tx" and rec.get("mavpackettype") != "HEARTBEAT":
            # timing is judged from the GCS's last action, so a slow GCS does not look like a slow vehicle
            anchor = rec["t"]
        if rec["dir"] == "tx":
            if rec.get("mavpackettype") in ("PARAM_REQUEST_READ", "PARAM_SET"):
                asked.add(rec["param_id"])
            continue
        if rec["dir"] != "rx" or rec.get("src", [1])[0] == 255:
            continue
        key = key_of(rec, asked)
        if key is None:
            continue
        boot = key[0] == "STATUSTEXT" and key[2] in BOOT_TEXTS
        if key[0] == "HEARTBEAT":
            if key == last_hb:
                continue
            boot = last_hb is not None and last_hb[3] == 1 and key[3] == 3  # end of boot: BOOT -> STANDBY
            last_hb = key
        out.append(Event(phase, round((rec["t"] - anchor) * speedup, 3), key,
                         round((rec["t"] - t0) * speedup, 3), boot))
    return out


def load_reduced(session: int) -> list[Event]:
    name, _ = SESSIONS[session]
    with gzip.open(DATA / f"{name}.events.jsonl.gz", "rt") as f:
        return [Event(d["phase"], d["t_s"], tuple(d["key"]), d["t_abs_s"], d["boot"]) for d in map(json.loads, f)]


# Fields of the first message of each type that a GCS or our flight code relies on
SHAPE_FIELDS = {
    "HEARTBEAT": ("type", "autopilot", "mavlink_version"),
    "GPS_RAW_INT": ("fix_type", "satellites_visible", "lat", "lon"),
    "GLOBAL_POSITION_INT": ("lat", "lon", "relative_alt"),
    "SYS_STATUS": ("voltage_battery", "battery_remaining", "current_battery"),
    "BATTERY_STATUS": ("battery_remaining", "current_consumed", "id"),
    "EKF_STATUS_REPORT": ("flags",),
    "AUTOPILOT_VERSION": ("flight_sw_version", "capabilities"),
    "HOME_POSITION": ("latitude", "longitude"),
    "GPS_GLOBAL_ORIGIN": ("latitude", "longitude"),
    "MISSION_CURRENT": ("seq", "mission_mode"),
    "VFR_HUD": ("airspeed", "throttle"),
    "WIND": ("direction", "speed"),
}


def first_of_each_type(records: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for rec in records:
        if rec["dir"] == "rx" and rec["mavpackettype"] not in out:
            out[rec["mavpackettype"]] = {k: v for k, v in rec.items() if k not in ("t", "phase", "dir", "src")}
    return out


def load_shapes(session: int) -> dict[str, dict]:
    name, _ = SESSIONS[session]
    return json.loads((DATA / f"{name}.shapes.json").read_text())


def reduce_trace(shared_dir: Path) -> None:
    """Regenerate tests/sim/data/*.events.jsonl.gz from the full recorded traces."""
    DATA.mkdir(exist_ok=True)
    for name, speedup in SESSIONS.values():
        with gzip.open(shared_dir / f"{name}.jsonl.gz", "rt") as f:
            records = [json.loads(line) for line in f]
        (DATA / f"{name}.shapes.json").write_text(json.dumps(first_of_each_type(records), indent=0,
                                                             allow_nan=True) + "\n")
        events = key_events(records, speedup)
        with gzip.open(DATA / f"{name}.events.jsonl.gz", "wt") as f:
            for e in events:
                f.write(json.dumps({"phase": e.phase, "t_s": e.t_s, "key": list(e.key), "t_abs_s": e.t_abs_s,
                                    "boot": e.boot}) + "\n")


# ---------------------------------------------------------------- replay
class Replayer:
    """The recorded GCS scripts' helpers (pump/cmd/set_mode/upload/download) over a TestGcs link.

    Waits are given in the script's wall seconds; they become vehicle seconds times the speedup
    the session was recorded at, and are measured on the vehicle's clock here, so a slow or
    busy machine changes nothing but the replay's duration.
    """

    def __init__(self, link: TestGcs, fleet, session_speedup: float) -> None:
        self.link, self.fleet = link, fleet
        self.scale = session_speedup  # script wall s -> vehicle s
        self.phase = "connect"
        self.records: list[dict] = []
        self._seen = 0
        self.hb_on = True
        link.heartbeats_on = False
        link.clock = fleet.clock  # log arrival in vehicle time
        link.frozen = fleet.clock.frozen  # and parsing takes none of it
        self._hb_task = asyncio.create_task(self._heartbeats())
        self.S, self.C = 1, 1
        link.mav.set_send_callback(self._on_tx)
        # lockstep: vehicle time runs only while this GCS waits (in pump), never while it works,
        # as if the GCS were infinitely fast - a loaded test machine cannot shift the timeline
        fleet.clock.pause()

    def vt(self) -> float:
        return self.fleet.clock()

    def _on_tx(self, msg) -> None:
        d = msg.to_dict()
        self.records.append({"t": self.vt(), "phase": self.phase, "dir": "tx", **d})

    async def _heartbeats(self) -> None:
        while True:
            if self.hb_on:
                self.link.mav.heartbeat_send(m.MAV_TYPE_GCS, m.MAV_AUTOPILOT_INVALID, 0, 0, 0)
            await self.sleep_vehicle(1.0 * self.scale)

    async def sleep_vehicle(self, seconds: float) -> None:
        end = self.vt() + seconds
        while self.vt() < end:
            await asyncio.sleep(min(0.01, (end - self.vt()) / self.fleet.speedup + 0.001))

    def close(self) -> None:
        self._hb_task.cancel()
        self.fleet.clock.resume()

    def _next(self):
        """Record and return the next logged message (like the script's recv), or None."""
        if self._seen >= len(self.link.log):
            return None
        vt, msg = self.link.log[self._seen]
        self._seen += 1
        self.records.append({"t": vt, "phase": self.phase, "dir": "rx",
                             "src": [msg.get_srcSystem(), msg.get_srcComponent()], **msg.to_dict()})
        return msg

    async def pump(self, pred=None, timeout: float = 5.0):
        end = self.vt() + timeout * self.scale
        while True:
            with self.fleet.clock.frozen():
                while (msg := self._next()) is not None:
                    if pred and pred(msg):
                        return msg
            left = end - self.vt()
            if left <= 0:
                return None
            self.link._new.clear()
            self.fleet.clock.resume()
            try:
                await asyncio.wait_for(self.link._new.wait(), min(left / self.fleet.speedup + 0.001, 0.02))
            except asyncio.TimeoutError:
                pass
            finally:
                self.fleet.clock.pause()

    @staticmethod
    def is_(t, **kw):
        return lambda x: x.get_type() == t and all(getattr(x, k) == v for k, v in kw.items())

    async def cmd(self, command, *p, timeout=3.0):
        p = list(p) + [0] * (7 - len(p))
        self.link.mav.command_long_send(self.S, self.C, command, 0, *p)
        return await self.pump(self.is_("COMMAND_ACK", command=command), timeout)

    async def set_mode(self, mode: int):
        self.link.mav.set_mode_send(self.S, m.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, mode)
        return await self.pump(self.is_("COMMAND_ACK", command=m.MAV_CMD_DO_SET_MODE), 3)

    async def upload(self, items, mission_type=0, skip_reply_at=None):
        mav = self.link.mav
        mav.mission_count_send(self.S, self.C, len(items), mission_type)
        while True:
            msg = await self.pump(lambda x: x.get_type() in ("MISSION_REQUEST_INT", "MISSION_REQUEST", "MISSION_ACK")
                                  and getattr(x, "mission_type", 0) == mission_type, 8)
            if msg is None:
                return None
            if msg.get_type() == "MISSION_ACK":
                return msg.type
            seq = msg.seq
            if skip_reply_at is not None and seq == skip_reply_at:
                last = await self.pump(lambda x: x.get_type() == "MISSION_ACK", 20)
                return None if last is None else last.type
            it = items[seq]
            mav.mission_item_int_send(self.S, self.C, seq, it.get("frame", m.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT),
                                      it["cmd"], 0, 1, *it.get("p", [0, 0, 0, 0]),
                                      int(it.get("lat", 0) * 1e7), int(it.get("lon", 0) * 1e7),
                                      it.get("alt", 0), mission_type)

    async def download(self, mission_type=0):
        mav = self.link.mav
        mav.mission_request_list_send(self.S, self.C, mission_type)
        cnt = await self.pump(self.is_("MISSION_COUNT"), 5)
        if cnt is None:
            return
        for seq in range(cnt.count):
            mav.mission_request_int_send(self.S, self.C, seq, mission_type)
            await self.pump(self.is_("MISSION_ITEM_INT", seq=seq), 3)
        mav.mission_ack_send(self.S, self.C, 0, mission_type)


def _offset(lat, lon, dn, de):
    # the scripts' own flat-earth offset, kept so the replayed coordinates are the recorded ones
    return lat + dn / 111320.0, lon + de / (111320.0 * math.cos(math.radians(lat)))


async def replay_session1(r: Replayer) -> None:
    """gcs_script_session1.py, step for step."""
    mav = r.link.mav
    hb = await r.pump(r.is_("HEARTBEAT"), 60)
    r.S, r.C = hb.get_srcSystem(), hb.get_srcComponent()
    await r.pump(None, 10)
    r.phase = "streams"
    mav.request_data_stream_send(r.S, r.C, m.MAV_DATA_STREAM_ALL, 4, 1)
    await r.cmd(m.MAV_CMD_SET_MESSAGE_INTERVAL, m.MAVLINK_MSG_ID_GLOBAL_POSITION_INT, 200000)
    await r.cmd(m.MAV_CMD_REQUEST_MESSAGE, m.MAVLINK_MSG_ID_AUTOPILOT_VERSION)
    await r.cmd(m.MAV_CMD_REQUEST_MESSAGE, m.MAVLINK_MSG_ID_HOME_POSITION)
    await r.pump(None, 6)
    r.phase = "params"
    for name in ["WPNAV_SPEED", "WPNAV_SPEED_UP", "WPNAV_SPEED_DN", "RTL_ALT", "FS_GCS_ENABLE", "FS_GCS_TIMEOUT",
                 "BATT_LOW_VOLT", "BATT_FS_LOW_ACT", "FENCE_ENABLE", "FENCE_ACTION", "FENCE_ALT_MAX",
                 "SYSID_THISMAV", "CIRCLE_RADIUS", "WP_YAW_BEHAVIOR", "NO_SUCH_PARAM"]:
        mav.param_request_read_send(r.S, r.C, name.encode(), -1)
        await r.pump(lambda x, n=name: x.get_type() == "PARAM_VALUE" and x.param_id == n, 2)
    mav.param_set_send(r.S, r.C, b"WPNAV_SPEED", 800, m.MAV_PARAM_TYPE_REAL32)
    await r.pump(lambda x: x.get_type() == "PARAM_VALUE" and x.param_id == "WPNAV_SPEED", 2)
    mav.param_set_send(r.S, r.C, b"NO_SUCH_PARAM", 1, m.MAV_PARAM_TYPE_REAL32)
    await r.pump(None, 2)
    r.phase = "arm-too-early"
    await r.set_mode(4)
    await r.cmd(m.MAV_CMD_COMPONENT_ARM_DISARM, 1)
    await r.pump(None, 2)
    await r.cmd(m.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 20)
    home = await r.pump(r.is_("GLOBAL_POSITION_INT"), 5)
    lat0, lon0 = home.lat / 1e7, home.lon / 1e7
    wps = [_offset(lat0, lon0, dn, de) for dn, de in [(150, 0), (150, 150), (0, 150), (-100, 50)]]
    mission = [{"cmd": 16, "lat": lat0, "lon": lon0, "alt": 0, "frame": 0}, {"cmd": 22, "alt": 30}]
    mission += [{"cmd": 16, "lat": a, "lon": b, "alt": 30} for a, b in wps]
    mission += [{"cmd": 178, "p": [1, 6, -1, 0]}, {"cmd": 20}]
    r.phase = "mission-upload"
    await r.upload(mission)
    r.phase = "mission-download"
    await r.download(0)
    r.phase = "mission-upload-errors"
    await r.upload([dict(mission[0]), {"cmd": 31999, "alt": 30}])
    await r.upload(mission, skip_reply_at=3)
    mav.mission_clear_all_send(r.S, r.C, 0)
    await r.pump(r.is_("MISSION_ACK"), 3)
    await r.upload(mission)
    r.phase = "fence-rally"
    box = [_offset(lat0, lon0, dn, de) for dn, de in [(-400, -400), (400, -400), (400, 400), (-400, 400)]]
    await r.upload([{"cmd": 5001, "p": [4, 0, 0, 0], "lat": a, "lon": b, "frame": 0} for a, b in box], mission_type=1)
    await r.download(1)
    ra, rb = _offset(lat0, lon0, -50, -50)
    await r.upload([{"cmd": 5100, "lat": ra, "lon": rb, "alt": 25}], mission_type=2)
    await r.download(2)
    r.phase = "arm"
    for _ in range(60):
        a = await r.cmd(m.MAV_CMD_COMPONENT_ARM_DISARM, 1)
        if a is not None and a.result == 0:
            break
        await r.pump(None, 2)
    r.phase = "takeoff"
    await r.cmd(m.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 30)
    await r.pump(lambda x: x.get_type() == "GLOBAL_POSITION_INT" and x.relative_alt > 28500, 40)
    r.phase = "auto"
    await r.set_mode(3)
    await r.pump(r.is_("MISSION_ITEM_REACHED", seq=3), 90)
    r.phase = "guided-retask"
    await r.set_mode(4)
    ta, tb = _offset(lat0, lon0, 250, 250)
    await r.cmd(m.MAV_CMD_DO_REPOSITION, -1, 1, 0, float("nan"), ta, tb, 40)
    mav.command_int_send(r.S, r.C, 6, m.MAV_CMD_DO_REPOSITION, 0, 0, -1, 1, 0, float("nan"),
                         int(ta * 1e7), int(tb * 1e7), 40)
    await r.pump(r.is_("COMMAND_ACK", command=m.MAV_CMD_DO_REPOSITION), 3)
    await r.pump(None, 25)
    mav.set_position_target_global_int_send(0, r.S, r.C, 6, 0b0000111111111000, int(ta * 1e7), int(tb * 1e7), 35,
                                            0, 0, 0, 0, 0, 0, 0, 0)
    await r.pump(None, 8)
    mav.command_int_send(r.S, r.C, 6, m.MAV_CMD_DO_ORBIT, 0, 0, 30, 3, 0, 0, int(ta * 1e7), int(tb * 1e7), 35)
    await r.pump(r.is_("COMMAND_ACK", command=m.MAV_CMD_DO_ORBIT), 3)
    mav.param_set_send(r.S, r.C, b"CIRCLE_RADIUS", 3000, m.MAV_PARAM_TYPE_REAL32)
    await r.pump(None, 1)
    await r.set_mode(7)
    await r.pump(None, 15)
    await r.set_mode(5)
    await r.pump(None, 5)
    r.phase = "resume"
    await r.set_mode(3)
    await r.pump(lambda x: x.get_type() == "MISSION_CURRENT", 5)
    await r.cmd(m.MAV_CMD_DO_SET_MISSION_CURRENT, 4)
    await r.pump(r.is_("MISSION_ITEM_REACHED", seq=4), 60)
    r.phase = "gcs-failsafe"
    mav.param_set_send(r.S, r.C, b"FS_GCS_ENABLE", 1, m.MAV_PARAM_TYPE_REAL32)
    await r.pump(None, 1)
    r.hb_on = False
    await r.pump(lambda x: x.get_type() == "HEARTBEAT" and x.get_srcSystem() == r.S and x.custom_mode == 6, 20)
    r.hb_on = True
    await r.pump(None, 3)
    r.phase = "rtl-land"
    await r.pump(lambda x: x.get_type() == "HEARTBEAT" and x.get_srcSystem() == r.S
                 and not (x.base_mode & m.MAV_MODE_FLAG_SAFETY_ARMED), 150)
    await r.pump(None, 3)
    r.phase = "end"


async def replay_session2(r: Replayer) -> None:
    """gcs_script_session2.py, step for step."""
    mav = r.link.mav
    hb = await r.pump(r.is_("HEARTBEAT"), 60)
    r.S, r.C = hb.get_srcSystem(), hb.get_srcComponent()
    mav.request_data_stream_send(r.S, r.C, m.MAV_DATA_STREAM_ALL, 2, 1)
    r.phase = "param-list"
    mav.param_request_list_send(r.S, r.C)
    names: list[str] = []

    def grab(x):
        if x.get_type() == "PARAM_VALUE":
            names.append(x.param_id)
            return x.param_index == x.param_count - 1
        return False

    await r.pump(grab, 40)
    r.param_names = names
    r.phase = "do-set-mode"
    for mode in (4, 5, 0, 77):
        await r.cmd(m.MAV_CMD_DO_SET_MODE, m.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, mode)
    r.phase = "wait-home"
    await r.cmd(m.MAV_CMD_SET_MESSAGE_INTERVAL, m.MAVLINK_MSG_ID_HOME_POSITION, 1000000)
    home = await r.pump(r.is_("HOME_POSITION"), 120)
    lat0, lon0 = home.latitude / 1e7, home.longitude / 1e7
    r.phase = "fence-setup"
    box = [_offset(lat0, lon0, dn, de) for dn, de in [(-300, -300), (300, -300), (300, 300), (-300, 300)]]
    await r.upload([{"cmd": 5001, "p": [4, 0, 0, 0], "lat": a, "lon": b, "frame": 0} for a, b in box], mission_type=1)
    await r.cmd(m.MAV_CMD_DO_FENCE_ENABLE, 1)
    r.phase = "arm"
    await r.cmd(m.MAV_CMD_DO_SET_MODE, m.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, 4)
    for _ in range(60):
        a = await r.cmd(m.MAV_CMD_COMPONENT_ARM_DISARM, 1)
        if a is not None and a.result == 0:
            break
        await r.pump(None, 2)
    await r.cmd(m.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 25)
    await r.pump(lambda x: x.get_type() == "GLOBAL_POSITION_INT" and x.relative_alt > 23500, 40)
    r.phase = "roi-overwatch"
    ta, tb = _offset(lat0, lon0, 120, 60)
    sa, sb = _offset(lat0, lon0, 80, 20)
    mav.command_int_send(r.S, r.C, 6, m.MAV_CMD_DO_REPOSITION, 0, 0, -1, 1, 0, float("nan"),
                         int(sa * 1e7), int(sb * 1e7), 25)
    await r.pump(r.is_("COMMAND_ACK", command=m.MAV_CMD_DO_REPOSITION), 3)
    mav.command_int_send(r.S, r.C, 6, m.MAV_CMD_DO_SET_ROI_LOCATION, 0, 0, 0, 0, 0, 0,
                         int(ta * 1e7), int(tb * 1e7), 0)
    await r.pump(r.is_("COMMAND_ACK", command=m.MAV_CMD_DO_SET_ROI_LOCATION), 3)
    await r.pump(None, 20)
    await r.cmd(m.MAV_CMD_DO_SET_ROI_NONE)
    r.phase = "circle-with-rc-mid"
    mav.rc_channels_override_send(r.S, r.C, 0, 0, 1500, 0, 0, 0, 0, 0)
    await r.cmd(m.MAV_CMD_DO_SET_MODE, m.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, 7)
    for _ in range(12):
        mav.rc_channels_override_send(r.S, r.C, 0, 0, 1500, 0, 0, 0, 0, 0)
        await r.pump(None, 1)
    await r.cmd(m.MAV_CMD_DO_SET_MODE, m.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, 4)
    mav.rc_channels_override_send(r.S, r.C, 0, 0, 0, 0, 0, 0, 0, 0)
    r.phase = "fence-breach"
    fa, fb = _offset(lat0, lon0, 450, 0)
    mav.command_int_send(r.S, r.C, 6, m.MAV_CMD_DO_REPOSITION, 0, 0, -1, 1, 0, float("nan"),
                         int(fa * 1e7), int(fb * 1e7), 25)
    await r.pump(lambda x: x.get_type() == "HEARTBEAT" and x.get_srcSystem() == r.S and x.custom_mode not in (4,), 90)
    await r.pump(None, 10)
    await r.cmd(m.MAV_CMD_DO_FENCE_ENABLE, 0)
    await r.cmd(m.MAV_CMD_DO_SET_MODE, m.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, 4)
    r.phase = "battery-failsafe"
    mav.param_set_send(r.S, r.C, b"BATT_FS_LOW_ACT", 2, m.MAV_PARAM_TYPE_REAL32)
    await r.pump(None, 1)
    mav.param_set_send(r.S, r.C, b"SIM_BATT_VOLTAGE", 10.2, m.MAV_PARAM_TYPE_REAL32)
    await r.pump(lambda x: x.get_type() == "HEARTBEAT" and x.get_srcSystem() == r.S and x.custom_mode != 4, 30)
    await r.pump(lambda x: x.get_type() == "HEARTBEAT" and x.get_srcSystem() == r.S
                 and not (x.base_mode & m.MAV_MODE_FLAG_SAFETY_ARMED), 150)
    r.phase = "end"


# ---------------------------------------------------------------- comparison
def _heartbeats_last(events: list[Event]) -> list[Event]:
    return [e for e in events if e.key[0] != "HEARTBEAT"] + [e for e in events if e.key[0] == "HEARTBEAT"]


def compare(recorded: list[Event], replayed: list[Event], rel_tol: float = 0.3, abs_tol_s: float = 2.0) -> list[str]:
    """Differences, per phase: content/order of key events, then timing of the matched ones."""
    problems: list[str] = []
    want = [e for e in recorded if e.boot]
    got = [e for e in replayed if e.boot]
    if [e.key for e in want] != [e.key for e in got]:
        problems.append(f"[start-up] events differ:\n  recorded: {[e.key for e in want]}\n"
                        f"  replayed: {[e.key for e in got]}")
    else:
        for w, g in zip(want, got):
            if abs(w.t_abs_s - g.t_abs_s) > max(abs_tol_s, 0.1 * w.t_abs_s):
                problems.append(f"[start-up] {w.key} at {g.t_abs_s:.1f} s; recorded {w.t_abs_s:.1f} s")
    phases = list(dict.fromkeys(e.phase for e in recorded))
    for phase in phases:
        # Heartbeats are compared in their own order: where a 1 Hz heartbeat falls among a phase's
        # acks is the phase of its clock against the GCS's (luck on the real vehicle too), and the
        # replay at speedup squeezes the GCS's round trips; content and timing are still checked.
        want = _heartbeats_last([e for e in recorded if e.phase == phase and not e.boot])
        got = _heartbeats_last([e for e in replayed if e.phase == phase and not e.boot])
        if [e.key for e in want] != [e.key for e in got]:
            problems.append(f"[{phase}] events differ:\n  recorded: {[e.key for e in want]}\n"
                            f"  replayed: {[e.key for e in got]}")
            continue
        for w, g in zip(want, got):
            if abs(w.t_s - g.t_s) > max(abs_tol_s, rel_tol * w.t_s):
                problems.append(f"[{phase}] {w.key} {g.t_s:.1f} s after the GCS's last message; "
                                f"recorded {w.t_s:.1f} s")
    return problems


if __name__ == "__main__":
    reduce_trace(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/ardupilot"))
