"""The fuzz targets of issue 15, each a (generate, check) pair for fuzzkit.run_target, driving the
real entry points with no broker, vehicle or network:

    mqtt-controller  Dispatcher._handle: every inbound topic (detections/ID, alarms/SOURCE, units/ID/location,
                     units/ID/acks, units/ID/status), payloads and ids mutated
    mqtt-rider       RiderClient._handle: alerts and alert cancels on units/ID/alerts
    grid-geojson     mission_planner.load_grids on a file
    plan-file        mission_planner.read_plan on a .plan file
    scenario-yaml    runloop.scenario.load_scenario on a YAML file
    mavlink-flight   flight's link decoding and Vehicle message handling: frames from our vehicle,
                     from forged/unknown system ids, garbage, truncated, bad CRC
    mavlink-signed   the same with MAVLink 2 signing on: unsigned and wrongly signed frames (forged
                     with our vehicle's id included) never reach the handlers, RADIO_STATUS aside
    mavlink-sim      the simulator's GCS connection (parse + handlers) with the same frames

A rejection counts as named when the error names the input (topic or file) and says more.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from tests.fuzz.fuzzkit import ACCEPTED, Rejected, generate_document, mutate_bytes, random_bytes

REPO = Path(__file__).resolve().parents[2]


def names(message: str, label: str) -> bool:
    """The message names the input and says something about it beyond that."""
    return label in message and len(message.replace(label, "").strip(" :\n")) >= 8


class LogCatcher(logging.Handler):
    """Records of one logger, kept out of pytest's capture (10,000 warnings would swamp it)."""

    def __init__(self, name: str, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []
        self.logger = logging.getLogger(name)
        self.saved = (self.logger.level, self.logger.propagate)
        self.logger.addHandler(self)
        self.logger.setLevel(level)
        self.logger.propagate = False

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def close(self) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.saved[0])
        self.logger.propagate = self.saved[1]
        super().close()


def fuzz_id(rng: random.Random, good: str) -> str:
    # No + or #: a broker never delivers a message on a topic with a wildcard in it.
    return good if rng.random() < 0.85 else rng.choice(["", "bad id", "x" * 200, "\u00e9", "..", "M01/x", "M01 "])


# ------------------------------------------------------------------------------ MQTT: controller
INCIDENT = {"id": "fire-1", "kind": "fire", "confidence": 0.9, "lat": 32.0, "lon": 119.58, "error_m": 4.0,
            "first_seen": 1_700_000_000.0, "last_seen": 1_700_000_005.0, "grid_id": "G-101", "drone_id": "D1"}
CONTROLLER_SEEDS = {
    "detections": [{"schema": "patrol.detection/1", "state": s, "incident": INCIDENT} for s in ("new", "update", "end")]
                  + [{"schema": "patrol.detection/1", "state": "new", "incident": INCIDENT, "snapshot": "/9j/4AAQSkZJRg=="}],
    "location": [{"_type": "location", "lat": 32.0005, "lon": 119.5805, "tst": 1_700_000_000, "acc": 5.0,
                  "vel": 20.0, "cog": 90.0, "batt": 80, "status": "available"}],
    "acks": [{"schema": "patrol.ack/1", "alert_id": "__OPEN__", "action": a, "ts": 1_700_000_010.0}
             for a in ("accept", "decline", "arrived", "resolved")],
    "status": [{"schema": "patrol.presence/1", "state": "online", "ts": 1.0},
               {"schema": "patrol.presence/1", "state": "offline", "reason": "signed_off"}],
    "alarms": [{"schema": "patrol.alarm/1", "id": "110-0001", "kind": "110-call", "lat": 32.001, "lon": 119.581,
                "priority": 1, "text": "smoke", "ts": 1_700_000_000.0},
               {"schema": "patrol.alarm/1", "id": "S7-1", "kind": "smoke-sensor", "grid_id": "DY-C0713"}],
}


class ControllerTarget:
    """A Dispatcher with a journal in a temporary directory, fed messages straight into its handler."""

    name = "mqtt-controller"

    def __init__(self) -> None:
        from dispatch.config import BrokerConfig, DispatchConfig
        from dispatch.controller import Dispatcher

        self.tmp = tempfile.TemporaryDirectory(prefix="fuzz-dispatch-")
        self.loop = asyncio.new_event_loop()
        self.logs = LogCatcher("dispatch.controller", logging.WARNING)
        asyncio.set_event_loop(self.loop)
        self.dispatcher = Dispatcher(BrokerConfig(), DispatchConfig(journal_path=Path(self.tmp.name) / "journal.sqlite"))
        self.dispatcher._wake = asyncio.Event()

    def generate(self, rng: random.Random) -> tuple[str, bytes]:
        kind = rng.choice(list(CONTROLLER_SEEDS))
        if kind == "detections":
            topic = f"patrol/detections/{fuzz_id(rng, rng.choice(['D1', 'D2']))}"
        elif kind == "alarms":
            topic = f"patrol/alarms/{fuzz_id(rng, 'callcentre')}"
        else:
            topic = f"patrol/units/{fuzz_id(rng, rng.choice(['M01', 'M02']))}/{kind}"
        return topic, generate_document(rng, CONTROLLER_SEEDS[kind])

    def check(self, data: tuple[str, bytes]) -> Any:
        import aiomqtt

        topic, payload = data
        if b"__OPEN__" in payload and self.dispatcher._alerts:
            payload = payload.replace(b"__OPEN__", next(iter(self.dispatcher._alerts)).encode())
        invalid = self.dispatcher.stats.invalid
        logged = len(self.logs.records)
        message = aiomqtt.Message(topic, payload, qos=1, retain=False, mid=1, properties=None)
        self.loop.run_until_complete(asyncio.wait_for(self.dispatcher._handle(message), 5))
        if self.dispatcher.stats.invalid == invalid:
            return ACCEPTED
        # What the operator reads: the warning naming the topic, then the reason.
        said = "\n".join(r.getMessage() for r in self.logs.records[logged:] if "dropped message" in r.getMessage())
        reason = self.dispatcher.stats.last_invalid_reason
        return Rejected(said or reason, names(said, topic) and len(reason) >= 8)

    def close(self) -> None:
        self.dispatcher.journal.close()
        self.loop.close()
        asyncio.set_event_loop(None)
        self.logs.close()
        self.tmp.cleanup()


# ------------------------------------------------------------------------------ MQTT: rider
ALERT = {"schema": "patrol.alert/1", "alert_id": "a-0001", "unit_id": "M01", "incident": INCIDENT, "distance_m": 812.4,
         "eta_s": 97.0, "bearing_deg": 45.0, "priority": 1, "issued_at": 1_700_000_000.0, "expires_at": 1_700_000_060.0}
CANCEL = {"schema": "patrol.alert-cancel/1", "alert_id": "a-0001", "incident_id": "fire-1", "reason": "resolved",
          "ts": 1_700_000_100.0}


class RiderTarget:
    """M01's RiderClient with a store in a temporary directory, fed what arrives on its alerts topic."""

    name = "mqtt-rider"
    topic = "patrol/units/M01/alerts"

    def __init__(self) -> None:
        from dispatch.config import BrokerConfig
        from dispatch.rider import RiderClient, RiderStore

        self.tmp = tempfile.TemporaryDirectory(prefix="fuzz-rider-")
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.logs = LogCatcher("dispatch.rider", logging.WARNING)
        self.rider = RiderClient(BrokerConfig(), "M01", RiderStore(Path(self.tmp.name) / "rider.sqlite"))

    def generate(self, rng: random.Random) -> bytes:
        alert = dict(ALERT, alert_id=f"a-{rng.randrange(10_000):04d}")
        return generate_document(rng, [alert, alert, dict(CANCEL, alert_id=alert["alert_id"])])

    def check(self, payload: bytes) -> Any:
        import aiomqtt

        before = len(self.logs.records)
        message = aiomqtt.Message(self.topic, payload, qos=1, retain=False, mid=1, properties=None)
        self.loop.run_until_complete(asyncio.wait_for(self.rider._handle(message), 5))
        new = self.logs.records[before:]
        if not new:
            return ACCEPTED
        reason = "\n".join(r.getMessage() for r in new)
        return Rejected(reason, names(reason, self.topic))

    def close(self) -> None:
        self.rider.store.close()
        self.loop.close()
        asyncio.set_event_loop(None)
        self.logs.close()
        self.tmp.cleanup()


# ------------------------------------------------------------------------------ files
class FileTarget:
    """A loader given a file: the input is written to one temporary file, loaded, and judged."""

    def __init__(self, name: str, suffix: str, seeds: list[Any], serialize, load, error: type[Exception],
                 raw_seeds: list[bytes] = ()) -> None:
        self.name, self.seeds, self.serialize, self.load, self.error = name, seeds, serialize, load, error
        self.raw_seeds = list(raw_seeds)
        self.tmp = tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-")
        self.path = Path(self.tmp.name) / f"input{suffix}"

    def generate(self, rng: random.Random) -> bytes:
        if self.raw_seeds and rng.random() < 0.15:
            return mutate_bytes(rng.choice(self.raw_seeds), rng)
        return generate_document(rng, self.seeds, self.serialize)

    def check(self, data: bytes) -> Any:
        self.path.write_bytes(data)
        try:
            self.load(self.path)
        except self.error as exc:
            return Rejected(str(exc), names(str(exc), str(self.path)))
        return ACCEPTED

    def close(self) -> None:
        self.tmp.cleanup()


def grid_seeds() -> list[dict]:
    """Small valid grid files cut from the Danyang sample: its docks, no-fly zones and a few cells."""
    data = json.loads((REPO / "mission_planner/samples/danyang_grids.geojson").read_text())
    by_kind: dict[str, list] = {}
    for f in data["features"]:
        by_kind.setdefault(f["properties"]["kind"], []).append(f)
    base = by_kind["dock"][:2] + by_kind["no_fly"][:1] + by_kind["special"][:1]
    return [dict(data, features=base + by_kind["comprehensive"][i:i + 3]) for i in (0, 100, 400)]


def grid_target() -> FileTarget:
    from mission_planner import PlanningError, load_grids

    return FileTarget("grid-geojson", ".geojson", grid_seeds(), lambda v: json.dumps(v, allow_nan=True).encode(),
                      load_grids, PlanningError)


def plan_seeds() -> list[dict]:
    """Valid .plan files as the planner writes them (fence polygons and circles, rally points) and
    as QGroundControl writes them."""
    from common.values import FenceZone, Mission, MissionItem, RallyPoint
    from mission_planner.formats import mission_to_plan_dict

    items = (MissionItem(16, 32.0, 119.58, 0.0, frame=0), MissionItem(22, 0.0, 0.0, 30.0),
             MissionItem(16, 32.001, 119.581, 30.0), MissionItem(16, 32.002, 119.583, 30.0, param1=2.0),
             MissionItem(20, 0.0, 0.0, 0.0))
    fence = (FenceZone(True, ((32.0, 119.57), (32.01, 119.57), (32.01, 119.59), (32.0, 119.59))),
             FenceZone(False, ((32.005, 119.58),), 50.0))
    mission = Mission(items, fence, (RallyPoint(32.003, 119.585, 20.0),), name="fuzz", drone_id="drone01",
                      grid_ids=("DY-C0001",))
    qgc = {"fileType": "Plan", "version": 1, "groundStation": "QGroundControl", "geoFence": {"version": 2,
           "polygons": [], "circles": []}, "rallyPoints": {"version": 2, "points": []},
           "mission": {"version": 2, "firmwareType": 3, "vehicleType": 2, "cruiseSpeed": 15, "hoverSpeed": 5,
                       "plannedHomePosition": [32.0, 119.58, 10],
                       "items": [{"type": "SimpleItem", "autoContinue": True, "command": 22, "doJumpId": 1,
                                  "frame": 3, "params": [0, 0, 0, None, 32.0, 119.58, 30], "AMSLAltAboveTerrain": None,
                                  "Altitude": 30, "AltitudeMode": 1}]}}
    return [mission_to_plan_dict(mission), qgc]


def plan_target() -> FileTarget:
    from mission_planner import PlanningError, read_plan

    return FileTarget("plan-file", ".plan", plan_seeds(), lambda v: json.dumps(v, allow_nan=True).encode(),
                      read_plan, PlanningError)


def scenario_target() -> FileTarget:
    from runloop.errors import RunError
    from runloop.scenario import load_scenario

    files = sorted((REPO / "sim/scenarios").glob("*.yaml"))
    raw = [f.read_bytes() for f in files]
    seeds = [yaml.safe_load(r) for r in raw]
    return FileTarget("scenario-yaml", ".yaml", seeds, lambda v: yaml.safe_dump(v).encode(), load_scenario,
                      RunError, raw)


# ------------------------------------------------------------------------------ MAVLink
OUR_SYSID = 1
MESSAGE_CLASSES = sorted(mavlink2.mavlink_map.values(), key=lambda c: c.msgname)
_INT_RANGES = {"int8_t": (-2**7, 2**7 - 1), "uint8_t": (0, 2**8 - 1), "int16_t": (-2**15, 2**15 - 1),
               "uint16_t": (0, 2**16 - 1), "int32_t": (-2**31, 2**31 - 1), "uint32_t": (0, 2**32 - 1),
               "int64_t": (-2**63, 2**63 - 1), "uint64_t": (0, 2**64 - 1), "uint8_t_mavlink_version": (0, 255)}
_FLOATS = [0.0, -0.0, 1.0, -1.0, 1e-45, 3.4e38, -3.4e38, float("nan"), float("inf"), float("-inf"), 32.0, 119.58]


def _random_field(rng: random.Random, ftype: str, length: int) -> Any:
    if ftype == "char":
        return bytes(rng.randrange(256) if rng.random() < 0.3 else rng.randrange(32, 127)
                     for _ in range(rng.randint(0, length)))
    def one():
        if ftype in ("float", "double"):
            return rng.choice(_FLOATS) if rng.random() < 0.5 else rng.uniform(-1e7, 1e7)
        lo, hi = _INT_RANGES[ftype]
        return rng.choice([lo, hi, 0, 1]) if rng.random() < 0.4 else rng.randint(lo, hi)
    return [one() for _ in range(length)] if length else one()


# Commands a GCS sends (arm, take-off, RTL, land, mode, message intervals, home, mission start,
# reboot, fence, ...): a random uint16 would almost never be one.
COMMON_COMMANDS = [400, 22, 20, 21, 176, 511, 512, 179, 300, 246, 207, 178, 192, 195, 197, 201, 16, 17, 115, 183]


def random_message(rng: random.Random, cls=None):
    """A message of a random type (or `cls`) with every field random within its wire type; mostly
    addressed to our vehicle and carrying commands it knows, so the handlers behind are reached."""
    cls = cls or rng.choice(MESSAGE_CLASSES)
    lengths = dict(zip(cls.ordered_fieldnames, cls.array_lengths))
    args = []
    for name, ftype in zip(cls.fieldnames, cls.fieldtypes):
        value = _random_field(rng, ftype, lengths.get(name, 0))
        if name == "target_system" and rng.random() < 0.7:
            value = rng.choice([OUR_SYSID, 0])
        elif name == "target_component" and rng.random() < 0.7:
            value = rng.choice([1, 0])
        elif name == "command" and rng.random() < 0.8:
            value = rng.choice(COMMON_COMMANDS)
        args.append(value)
    return cls(*args)


VEHICLE_MESSAGES = [getattr(mavlink2, f"MAVLink_{n}_message") for n in (
    "heartbeat", "global_position_int", "attitude", "vfr_hud", "sys_status", "gps_raw_int", "ekf_status_report",
    "home_position", "mission_current", "mission_item_reached", "extended_sys_state", "statustext",
    "command_ack", "mission_request_int", "mission_ack", "mission_count", "mission_item_int", "param_value",
    "battery_status", "radio_status", "timesync")]
GCS_MESSAGES = [getattr(mavlink2, f"MAVLink_{n}_message") for n in (
    "heartbeat", "command_long", "command_int", "set_mode", "param_set", "param_request_read", "param_request_list",
    "mission_count", "mission_item_int", "mission_request_int", "mission_request_list", "mission_ack",
    "mission_clear_all", "mission_set_current", "set_position_target_global_int", "request_data_stream",
    "timesync", "system_time", "manual_control", "rc_channels_override")]


def mavlink_frames(rng: random.Random, likely: list) -> bytes:
    """1-4 frames: well formed from our system id or a forged/unknown one, of a type the receiver
    handles or any type; some with a bad CRC, cut short, or plain garbage."""
    out = b""
    for _ in range(rng.randint(1, 4)):
        sysid = OUR_SYSID if rng.random() < 0.45 else rng.choice([0, 2, 3, 42, 254, 255, rng.randrange(256)])
        mav = mavlink2.MAVLink(None, srcSystem=sysid, srcComponent=rng.choice([1, 1, 0, 190, 250]))
        mav.seq = rng.randrange(256)
        try:
            frame = random_message(rng, rng.choice(likely) if rng.random() < 0.7 else None).pack(mav)
        except (struct.error, TypeError, ValueError, OverflowError):
            frame = random_bytes(rng, 40)
        roll = rng.random()
        if roll < 0.12:
            frame = frame[:-2] + bytes([frame[-2] ^ 0xFF, frame[-1]])  # bad CRC
        elif roll < 0.22:
            frame = frame[:rng.randrange(max(len(frame), 1))]  # cut short
        elif roll < 0.30:
            frame = mutate_bytes(frame, rng)
        elif roll < 0.36:
            frame = random_bytes(rng, 120)
        elif roll < 0.40:
            frame = b"\xfd" + random_bytes(rng, 60)  # a start byte followed by garbage
        out += frame
    return out


class _Shadow:
    """A parser fed the same bytes as the receiver, to name what it dropped."""

    def __init__(self) -> None:
        self.parser = mavlink2.MAVLink(None)
        self.parser.robust_parsing = True

    def verdict(self, data: bytes, handled: int) -> Any:
        try:
            msgs = self.parser.parse_buffer(data) or []
        except Exception as exc:  # bare MAVError from pymavlink
            msgs, reasons = [], [str(exc)]
        else:
            reasons = [m.reason for m in msgs if m.get_type() == "BAD_DATA"]
        if handled:
            return ACCEPTED
        foreign = [m.get_srcSystem() for m in msgs if m.get_type() != "BAD_DATA"]
        if foreign:
            reasons.append(f"from system {foreign[0]}, not {OUR_SYSID}, or not for it")
        if not reasons:
            reasons.append("incomplete frame, held for more bytes" if data else "no bytes")
        return Rejected("; ".join(reasons), all(reasons))


SIGNING_KEY = bytes(range(32))


def _sign(mav: mavlink2.MAVLink, key: bytes) -> None:
    mav.signing.secret_key = key
    mav.signing.link_id = 0
    mav.signing.timestamp = int((time.time() - 1420070400) * 1e5)
    mav.signing.sign_outgoing = True


class FlightLinkTarget:
    """A flight Vehicle that has heard its autopilot (system 1), fed frames through its link's
    decoder into its message handlers. A frame from any other system must change nothing."""

    name = "mavlink-flight"
    signed = False

    def __init__(self) -> None:
        from flight.config import FlightConfig
        from flight.vehicle import Vehicle

        self.tmp = tempfile.TemporaryDirectory(prefix="fuzz-flight-")
        config = FlightConfig()
        if self.signed:
            key_file = Path(self.tmp.name) / "signing.key"
            key_file.write_bytes(SIGNING_KEY)
            config = config.model_copy(update={"link": config.link.model_copy(update={"signing_key_file": key_file})})
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.vehicle = Vehicle("tcp:127.0.0.1:5760", drone_id="drone01", config=config)
        self.handled: list = []
        deliver = self.vehicle.link._on_message

        def spy(msg):
            self.handled.append(msg)
            deliver(msg)
        self.vehicle.link._on_message = spy
        autopilot = mavlink2.MAVLink(None, srcSystem=OUR_SYSID, srcComponent=1)
        if self.signed:
            _sign(autopilot, SIGNING_KEY)
        heartbeat = mavlink2.MAVLink_heartbeat_message(2, 3, 81, 5, 3, 3).pack(autopilot)
        self.vehicle.link.feed(heartbeat)
        assert self.vehicle.target_system == OUR_SYSID
        self.shadow = _Shadow()
        self.shadow.parser.parse_buffer(heartbeat)

    def generate(self, rng: random.Random) -> bytes:
        return mavlink_frames(rng, VEHICLE_MESSAGES)

    def check(self, data: bytes) -> Any:
        state_before = repr(self.vehicle.state)
        self.handled.clear()
        self.vehicle.link.feed(data)
        ours = sum(1 for m in self.handled if m.get_srcSystem() == OUR_SYSID)
        if self.vehicle.target_system != OUR_SYSID:
            raise AssertionError(f"a frame made the vehicle talk to system {self.vehicle.target_system}")
        if not ours and repr(self.vehicle.state) != state_before:
            raise AssertionError("a frame from another system changed the vehicle's state")
        return self.shadow.verdict(data, ours)

    def close(self) -> None:
        self.loop.close()
        asyncio.set_event_loop(None)
        self.tmp.cleanup()


class SignedFlightLinkTarget(FlightLinkTarget):
    """The vehicle link with signing on. Inputs: frames as above (unsigned: forged), some signed
    with a wrong key, some with the right one. Only the last (and unsigned RADIO_STATUS, which the
    radio cannot sign) may reach the handlers."""

    name = "mavlink-signed"
    signed = True

    def generate(self, rng: random.Random) -> bytes:
        roll = rng.random()
        if roll < 0.5:
            return mavlink_frames(rng, VEHICLE_MESSAGES)
        mav = mavlink2.MAVLink(None, srcSystem=OUR_SYSID if rng.random() < 0.7 else rng.randrange(256), srcComponent=1)
        _sign(mav, SIGNING_KEY if roll < 0.75 else bytes(rng.randrange(256) for _ in range(32)))
        try:
            frame = random_message(rng, rng.choice(VEHICLE_MESSAGES)).pack(mav)
        except (struct.error, TypeError, ValueError, OverflowError):
            return random_bytes(rng, 40)
        return mutate_bytes(frame, rng) if rng.random() < 0.2 else frame

    def check(self, data: bytes) -> Any:
        bad_before = self.vehicle.link.bad_frames
        outcome = super().check(data)
        for msg in self.handled:
            if not getattr(msg, "_signed", False) and msg.get_type() != "RADIO_STATUS":
                raise AssertionError(f"an unsigned {msg.get_type()} from system {msg.get_srcSystem()} was handled")
        if outcome != ACCEPTED and self.vehicle.link.bad_frames > bad_before:
            # The shadow parser does not check signatures; the link says why it dropped the frame.
            reason = self.vehicle.link.last_bad_reason
            return Rejected(reason, bool(reason))
        return outcome


class SimGcsTarget:
    """The simulator's vehicle 1 behind one GCS connection (what it sends is kept, not written),
    fed frames from GCSs with any system id. A handler error is logged by the connection, so it is
    caught from the log."""

    name = "mavlink-sim"

    def __init__(self) -> None:
        from sim.vehicles.link import GcsConnection
        from sim.vehicles.vehicle import SimulatedVehicle

        class Captured(GcsConnection):
            sent = 0

            def _write(self, data: bytes) -> None:
                Captured.sent += len(data)

        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.logs = LogCatcher("sim.vehicles", logging.ERROR)
        self.vehicle = SimulatedVehicle(0, (32.0, 119.58, 10.0), lambda: 100.0, port=0, fast_start=True)
        self.conn = Captured(self.vehicle, "fuzz")
        self.handled = 0
        handle = self.vehicle.handle_message

        def spy(conn, msg):
            self.handled += 1
            handle(conn, msg)
        self.vehicle.handle_message = spy
        self.shadow = _Shadow()

    def generate(self, rng: random.Random) -> bytes:
        return mavlink_frames(rng, GCS_MESSAGES)

    def check(self, data: bytes) -> Any:
        errors = len(self.logs.records)
        handled = self.handled
        self.loop.run_until_complete(self._feed(data))
        if len(self.logs.records) > errors:
            record = self.logs.records[errors]
            raise AssertionError(f"{record.getMessage()}: {record.exc_info[1]!r}" if record.exc_info else record.getMessage())
        return self.shadow.verdict(data, self.handled - handled)

    async def _feed(self, data: bytes) -> None:
        self.conn.feed(data)

    def close(self) -> None:
        self.loop.close()
        asyncio.set_event_loop(None)
        self.logs.close()


TARGETS = {"mqtt-controller": ControllerTarget, "mqtt-rider": RiderTarget, "grid-geojson": grid_target,
           "plan-file": plan_target, "scenario-yaml": scenario_target, "mavlink-flight": FlightLinkTarget,
           "mavlink-signed": SignedFlightLinkTarget,
           "mavlink-sim": SimGcsTarget}
