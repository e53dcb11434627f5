"""What ArduCopter keeps of each mission, fence and rally item: the one model of its storage.

ArduPilot stores every item in a compact record (AP_Mission::Mission_Command: a few bytes per
command), so a download does not return what was uploaded. `store()` answers, for one item sent
in a MISSION_ITEM_INT, the MISSION_ACK result ArduCopter gives and the item it reads back.
`sim/` stores items with it; `flight/` compares read-backs with it and refuses, before
uploading, what the vehicle would refuse or silently change.

Facts from `../shared/ardupilot/mission_item_roundtrip.jsonl` (ArduCopter 4.8.0-dev SITL: 52
commands x 7 variants, fence and rally lists, uploaded and read back one by one; summary in its
BEHAVIOUR.md), cross-checked with ArduPilot's AP_Mission::mavlink_int_to_mission_cmd,
MissionItemProtocol_Waypoints (DO_JUMP target check) and MissionItemProtocol_Rally (int16 alt).
The conformance test tests/sim/test_storage_conformance.py replays every line of that file.

>>> ack, back = store(WireItem(21, 6, param4=float("nan"), x=320010000, y=1195810000, z=60.25))
>>> ack, back.frame, back.param4
(0, 3, 1.0)
>>> store(WireItem(19, 6, param4=float("nan")))[0]   # NaN refused: MISSION_ACK INVALID_PARAM4
9
"""
from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass

MISSION, FENCE, RALLY = 0, 1, 2

# MAV_MISSION_RESULT values this model answers
ACCEPTED = 0
ERROR = 1
UNSUPPORTED = 3
NO_SPACE = 4
INVALID_PARAM1 = 6  # INVALID_PARAM1 + k - 1 for param k
INVALID_PARAM7 = 12

_INT_FRAME_TO_FLOAT = {5: 0, 6: 3, 11: 10, 2: 0}  # *_INT -> plain; MAV_FRAME_MISSION -> GLOBAL


@dataclass(frozen=True, slots=True)
class WireItem:
    """One item as MISSION_ITEM_INT carries it: x/y in degE7, z metres, params float32."""

    command: int
    frame: int = 3
    param1: float = 0.0
    param2: float = 0.0
    param3: float = 0.0
    param4: float = 0.0
    x: int = 0
    y: int = 0
    z: float = 0.0
    autocontinue: int = 1

    @property
    def lat(self) -> float:
        return self.x / 1e7

    @property
    def lon(self) -> float:
        return self.y / 1e7

    @property
    def params(self) -> tuple[float, float, float, float]:
        return (self.param1, self.param2, self.param3, self.param4)


# ---- how one field is stored and read back (C conversions as ArduPilot compiles them on x86)
def f32(v: float) -> float:
    """The float32 a MAVLink float field carries."""
    return struct.unpack("<f", struct.pack("<f", v))[0]


def _wrap(v: float, bits: int, signed: bool) -> float:
    """A float assigned to a C integer field: truncated toward zero, then wrapped (x86)."""
    if math.isnan(v) or math.isinf(v):
        return 0.0
    i = int(v) & ((1 << bits) - 1)
    if signed and i >= 1 << (bits - 1):
        i -= 1 << bits
    return float(i)


def _radius(v: float) -> float:
    """Loiter radius: whole metres up to 255, above that tens of metres (max 2550); sign = direction."""
    a = abs(v)
    stored = int(a) if a <= 255 else min(255, int(a * 0.1)) * 10
    return float(-stored if v < 0 else stored)


Param = Callable[[float], float]
KEEP: Param = lambda v: 0.0 if math.isnan(v) else f32(v)  # noqa: E731  float kept (NaN only where accepted)
DROP: Param = lambda v: 0.0  # noqa: E731  not stored: reads back 0
U8: Param = lambda v: _wrap(v, 8, False)  # noqa: E731
U16: Param = lambda v: _wrap(v, 16, False)  # noqa: E731
I8: Param = lambda v: _wrap(v, 8, True)  # noqa: E731
I16: Param = lambda v: _wrap(v, 16, True)  # noqa: E731
DIRECTION: Param = lambda v: -1.0 if v < 0 else 1.0  # noqa: E731  stored as a cw/ccw bit
POSITIVE: Param = lambda v: 1.0 if v > 0 else 0.0  # noqa: E731  stored as a flag (loiter xtrack)
RADIUS: Param = _radius
CENTI_U16: Param = lambda v: f32(_wrap(f32(v) * 100, 16, False) * f32(0.01))  # noqa: E731  cm in a uint16, * 0.01f
INTEGER_FIELDS = {U8: (0, 255), U16: (0, 65535), I8: (-128, 127), I16: (-32768, 32767)}

# x / y / z of one command: a location, nothing, or fields of the command packed into them
Where = Callable[[WireItem], tuple[int, int, float]]


def _alt_cm(z: float) -> float:
    """Location altitude: int32 centimetres."""
    return f32(float(int(f32(f32(z) * 100))) / 100) if math.isfinite(z) else 0.0


def _u8i(v: int) -> int:
    return v & 0xFF


def _i16i(v: int) -> int:
    v &= 0xFFFF
    return v - 0x10000 if v >= 0x8000 else v


LOCATION: Where = lambda it: (it.x, it.y, _alt_cm(it.z))  # noqa: E731
NO_LOCATION: Where = lambda it: (0, 0, 0.0)  # noqa: E731


@dataclass(frozen=True, slots=True)
class CommandStorage:
    """How ArduCopter stores one mission command: a codec per param and for x/y/z."""

    params: tuple[Param, Param, Param, Param]
    where: Where = NO_LOCATION
    nan_param4_ok: bool = False  # QGC's "unchanged yaw" NaN in param4 accepted (stored as 0 / LAND 1)
    refuse_p1_outside: tuple[float, float] | None = None  # MISSION_ACK INVALID_PARAM1 outside [lo, hi]
    custom: Callable[[tuple[float, ...]], tuple[float, float, float, float]] | None = None

    @property
    def has_location(self) -> bool:
        return self.where is LOCATION


def _loiter_turns(p: tuple[float, ...]) -> tuple[float, float, float, float]:
    """Turns in the low byte, radius in the high byte of one uint16 (a wrapped turns count
    overwrites the radius byte); direction and xtrack as flags."""
    turns = _wrap(min(255.0, p[0]), 16, False)
    a = abs(p[2])
    radius = int(a) if a <= 255 else min(255, int(a * 0.1))
    packed = int(turns) | (radius << 8)
    radius_back = (packed >> 8) * (10 if a > 255 else 1)
    return (float(packed & 0xFF), 0.0, float(-radius_back if p[2] < 0 else radius_back), POSITIVE(p[3]))


def _attitude_time(p: tuple[float, ...]) -> tuple[float, float, float, float]:
    """Time clamped to uint16; roll/pitch/yaw kept (as integers) only within +-180/90/360 degrees."""
    def within(v: float, limit: float) -> float:
        return I16(v) if abs(v) <= limit else 0.0
    return (float(int(min(65535.0, max(0.0, p[0])))), within(p[1], 180), within(p[2], 90), within(p[3], 360))


_C = CommandStorage
# Per command (MAV_CMD id): what ArduCopter 4.8 keeps. Commands absent here are refused with
# MISSION_ACK 3 (UNSUPPORTED) in a mission; those seen refused are listed in REFUSED below.
MISSION_STORAGE: dict[int, CommandStorage] = {
    16: _C((U16, DROP, DROP, DROP), LOCATION, nan_param4_ok=True, refuse_p1_outside=(0, 65535)),  # WAYPOINT
    17: _C((DROP, DROP, RADIUS, DROP), LOCATION, nan_param4_ok=True),  # LOITER_UNLIM
    18: _C((U16, DROP, RADIUS, POSITIVE), LOCATION, custom=_loiter_turns),  # LOITER_TURNS
    19: _C((U16, DROP, DIRECTION, POSITIVE), LOCATION),  # LOITER_TIME
    20: _C((DROP, DROP, DROP, DROP)),  # RETURN_TO_LAUNCH
    21: _C((U16, DROP, DROP, DIRECTION), LOCATION, nan_param4_ok=True),  # LAND: param4 read back +-1
    22: _C((U16, DROP, DROP, DROP), LOCATION, nan_param4_ok=True),  # TAKEOFF
    31: _C((DROP, RADIUS, DROP, POSITIVE), LOCATION),  # LOITER_TO_ALT
    82: _C((U16, DROP, DROP, DROP), LOCATION),  # SPLINE_WAYPOINT
    92: _C((U16, DROP, DROP, DROP), LOCATION),  # GUIDED_ENABLE
    93: _C((KEEP, I8, I8, I8)),  # NAV_DELAY
    94: _C((CENTI_U16, DROP, DROP, DROP), LOCATION),  # PAYLOAD_PLACE
    112: _C((KEEP, DROP, DROP, DROP)),  # CONDITION_DELAY
    114: _C((KEEP, DROP, DROP, DROP)),  # CONDITION_DISTANCE
    115: _C((KEEP, KEEP, I8, U8)),  # CONDITION_YAW
    177: _C((U16, I16, DROP, DROP)),  # DO_JUMP (target checked against the list, see store())
    178: _C((U8, KEEP, KEEP, DROP)),  # DO_CHANGE_SPEED
    179: _C((U16, DROP, DROP, DROP), LOCATION),  # DO_SET_HOME
    181: _C((U8, U8, DROP, DROP)),  # DO_SET_RELAY
    182: _C((U8, I16, KEEP, DROP)),  # DO_REPEAT_RELAY
    183: _C((U8, U16, DROP, DROP)),  # DO_SET_SERVO
    184: _C((U8, U16, I16, KEEP)),  # DO_REPEAT_SERVO
    189: _C((DROP, DROP, DROP, DROP), LOCATION),  # DO_LAND_START
    195: _C((U16, DROP, DROP, DROP), LOCATION),  # DO_SET_ROI_LOCATION
    197: _C((U16, DROP, DROP, DROP)),  # DO_SET_ROI_NONE
    201: _C((U16, DROP, DROP, DROP), LOCATION),  # DO_SET_ROI
    202: _C((U8, U16, U8, U16), lambda it: (_u8i(it.x), _u8i(it.y), f32(it.z))),  # DO_DIGICAM_CONFIGURE
    203: _C((U8, U8, I8, U8), lambda it: (_u8i(it.x), _u8i(it.y), 0.0)),  # DO_DIGICAM_CONTROL
    205: _C((KEEP, KEEP, KEEP, DROP), lambda it: (0, 0, 2.0)),  # DO_MOUNT_CONTROL: z = MAVLINK_TARGETING
    206: _C((KEEP, DROP, U8, DROP)),  # DO_SET_CAM_TRIGG_DIST
    207: _C((U16, DROP, DROP, DROP)),  # DO_FENCE_ENABLE
    208: _C((U16, DROP, DROP, DROP)),  # DO_PARACHUTE
    211: _C((U8, U8, DROP, DROP)),  # DO_GRIPPER
    212: _C((U16, DROP, DROP, DROP)),  # DO_AUTOTUNE_ENABLE
    215: _C((U16, DROP, DROP, DROP)),  # DO_SET_RESUME_REPEAT_DIST
    216: _C((U16, DROP, DROP, DROP)),  # DO_SPRAYER
    217: _C((U16, KEEP, KEEP, KEEP)),  # DO_SEND_SCRIPT_MESSAGE
    218: _C((U16, U8, DROP, DROP)),  # DO_AUX_FUNCTION
    222: _C((U16, KEEP, KEEP, KEEP)),  # DO_GUIDED_LIMITS
    600: _C((U16, DROP, DROP, DROP)),  # JUMP_TAG
    601: _C((U16, I16, DROP, DROP)),  # DO_JUMP_TAG
    1000: _C((I8, I16, I8, I8), lambda it: (_u8i(it.x), 0, float(int(f32(it.z)) & 0xFF))),  # GIMBAL_MANAGER_PITCHYAW
    2000: _C((U8, KEEP, U16, U16)),  # IMAGE_START_CAPTURE
    2001: _C((U16, DROP, DROP, DROP)),  # IMAGE_STOP_CAPTURE
    2500: _C((U8, DROP, DROP, DROP)),  # VIDEO_START_CAPTURE
    2501: _C((U8, DROP, DROP, DROP)),  # VIDEO_STOP_CAPTURE
    42600: _C((U8, U8, KEEP, KEEP)),  # DO_WINCH
    42702: _C((U8, U8, KEEP, KEEP), lambda it: (_i16i(it.x), _i16i(it.y), 0.0)),  # NAV_SCRIPT_TIME
    42703: _C((U16, I16, I16, I16), lambda it: (_i16i(it.x), 0, 0.0), custom=_attitude_time),  # NAV_ATTITUDE_TIME
}
# Seen refused with MISSION_ACK 3 although MAVLink defines them for missions.
REFUSED = {113: "CONDITION_CHANGE_ALT", 214: "DO_SET_CAM_TRIGG_INTERVAL", 526: "STORAGE_FORMAT"}

# Fence: vertex count / circle radius in param1, lat/lon; nothing else (z, params 2-4 -> 0).
FENCE_STORAGE: dict[int, tuple[Param, ...]] = {
    5000: (DROP,),  # RETURN_POINT
    5001: (KEEP,), 5002: (KEEP,),  # POLYGON_VERTEX_INCLUSION / _EXCLUSION: vertex count
    5003: (KEEP,), 5004: (KEEP,),  # CIRCLE_INCLUSION / _EXCLUSION: radius
}
RALLY_POINT = 5100
MAX_ITEMS = {MISSION: 724, FENCE: 84, RALLY: 10}  # SITL's storage limits


def _nan_refusal(item: WireItem, nan_param4_ok: bool) -> int:
    for k, v in enumerate(item.params):
        if math.isinf(v) or (math.isnan(v) and not (k == 3 and nan_param4_ok)):
            return INVALID_PARAM1 + k
    return ACCEPTED


def store(item: WireItem, mission_type: int = MISSION, *, upload_count: int = 2,
          stored_count: int = 0) -> tuple[int, WireItem | None]:
    """(MISSION_ACK result, item as read back) for one item ArduCopter receives; None if refused.

    `upload_count` / `stored_count` (items announced by MISSION_COUNT / held before the upload)
    matter only for DO_JUMP, whose target must be 1 .. either of them less one.
    """
    if mission_type == FENCE:
        codecs = FENCE_STORAGE.get(item.command)
        if codecs is None:
            return UNSUPPORTED, None
        return ACCEPTED, WireItem(item.command, 0, codecs[0](item.param1), x=item.x, y=item.y, z=0.0,
                                  autocontinue=0)
    if mission_type == RALLY:
        if item.command != RALLY_POINT:
            return UNSUPPORTED, None
        if not -32768 <= item.z <= 32767:
            return INVALID_PARAM7, None
        return ACCEPTED, WireItem(RALLY_POINT, _INT_FRAME_TO_FLOAT.get(item.frame, item.frame), x=item.x,
                                  y=item.y, z=float(int(item.z)), autocontinue=0)  # int16 metres
    spec = MISSION_STORAGE.get(item.command)
    refusal = _nan_refusal(item, spec.nan_param4_ok if spec else False)
    if refusal:
        return refusal, None  # ArduPilot checks params before it looks the command up
    if spec is None:
        return UNSUPPORTED, None
    if spec.refuse_p1_outside and not spec.refuse_p1_outside[0] <= item.param1 <= spec.refuse_p1_outside[1]:
        return INVALID_PARAM1, None
    if item.command == 177:
        target = U16(item.param1)
        if target == 0 or (target >= stored_count and target > upload_count - 1):
            return ERROR, None
    p = item.params
    params = spec.custom(p) if spec.custom else tuple(codec(v) for codec, v in zip(spec.params, p))
    x, y, z = spec.where(item)
    frame = _INT_FRAME_TO_FLOAT.get(item.frame, item.frame) if spec.has_location else 0
    return ACCEPTED, WireItem(item.command, frame, *params, x=x, y=y, z=z, autocontinue=item.autocontinue)


def changes_that_matter(item: WireItem, mission_type: int = MISSION) -> str | None:
    """Why ArduCopter would silently store a different number than sent for an integer field
    (negative, oversized: it wraps); None when every integer param fits its field.

    >>> print(changes_that_matter(WireItem(178, 3, -1.0, 5.0)))
    param1 -1.0 does not fit the vehicle's 0..255 field (it would keep 255)
    """
    if mission_type != MISSION or item.command not in MISSION_STORAGE:
        return None
    spec = MISSION_STORAGE[item.command]
    for k, (codec, v) in enumerate(zip(spec.params, item.params)):
        bounds = INTEGER_FIELDS.get(codec)
        if bounds is not None and math.isfinite(v) and not bounds[0] <= v < bounds[1] + 1:
            return (f"param{k + 1} {v} does not fit the vehicle's {bounds[0]}..{bounds[1]} field "
                    f"(it would keep {codec(v):g})")
    return None


def stored_list(old: list[WireItem], received: list[WireItem], upload_count: int) -> list[WireItem]:
    """What a list holds after an upload that ended (completed or not) after `received` items.

    ArduPilot truncates the stored list to the announced count when MISSION_COUNT arrives, then
    overwrites it item by item; it never rolls back. A complete upload is exactly the new list;
    a failed one is the new items followed by the old list's remaining ones.
    """
    if len(received) >= upload_count:
        return list(received[:upload_count])
    kept = old[:upload_count]
    return list(received) + kept[len(received):]


def frame_as_stored(frame: int) -> int:
    """The frame a located item reads back in (the non-INT variant)."""
    return _INT_FRAME_TO_FLOAT.get(frame, frame)

