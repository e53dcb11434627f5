"""ArduCopter flight modes: the HEARTBEAT custom_mode numbers and what each mode allows.

One table for both sides of the link: `flight/` names the modes it reads and commands by it, the
simulator (`sim/vehicles`) behaves by it. Numbers and names as ArduCopter's `mode.h`
(`Mode::Number`) has them, up to TURTLE (28, "flip over after crash", Copter 4.1 on); the mode
sets as Copter's `Mode::requires_GPS`, `allows_arming`, `has_manual_throttle` and
GCS_Mavlink.cpp's MAV_MODE_FLAG_GUIDED_ENABLED say.

>>> CopterMode.AUTO == 3 and CopterMode(6).name == "RTL"
True
>>> mode_name(28), mode_name(99)
('TURTLE', 'MODE99')
>>> mode_number("guided")
4
"""
from __future__ import annotations

from enum import IntEnum


class CopterMode(IntEnum):
    """ArduCopter's `Mode::Number` (an int: it compares with a HEARTBEAT's custom_mode)."""

    STABILIZE = 0
    ACRO = 1
    ALT_HOLD = 2
    AUTO = 3
    GUIDED = 4
    LOITER = 5
    RTL = 6
    CIRCLE = 7
    LAND = 9
    DRIFT = 11
    SPORT = 13
    FLIP = 14
    AUTOTUNE = 15
    POSHOLD = 16
    BRAKE = 17
    THROW = 18
    AVOID_ADSB = 19
    GUIDED_NOGPS = 20
    SMART_RTL = 21
    FLOWHOLD = 22
    FOLLOW = 23
    ZIGZAG = 24
    SYSTEMID = 25
    AUTOROTATE = 26
    AUTO_RTL = 27
    TURTLE = 28


M = CopterMode
COPTER_MODES: dict[str, int] = {m.name: m.value for m in CopterMode}  # name -> custom_mode
MODE_NAMES: dict[int, str] = {m.value: m.name for m in CopterMode}  # custom_mode -> name

# HEARTBEAT.base_mode carries MAV_MODE_FLAG_GUIDED_ENABLED in these (Copter GCS_Mavlink.cpp)
GUIDED_FLAG_MODES = frozenset({M.AUTO, M.AUTO_RTL, M.RTL, M.LOITER, M.AVOID_ADSB, M.FOLLOW, M.GUIDED, M.CIRCLE,
                               M.POSHOLD, M.BRAKE, M.SMART_RTL})
# refused without a position estimate ("Mode change to X failed: requires position")
REQUIRES_POSITION = frozenset({M.AUTO, M.GUIDED, M.LOITER, M.RTL, M.CIRCLE, M.POSHOLD, M.DRIFT, M.BRAKE,
                               M.SMART_RTL, M.FOLLOW, M.ZIGZAG, M.AUTO_RTL, M.SPORT})
# "Arm: Mode not armable"
NOT_ARMABLE = frozenset({M.AUTO, M.RTL, M.LAND, M.SMART_RTL, M.AUTO_RTL, M.CIRCLE, M.THROW})
# the pilot's throttle stick sets the climb rate
MANUAL_THROTTLE = frozenset({M.STABILIZE, M.ACRO, M.ALT_HOLD, M.LOITER, M.CIRCLE, M.DRIFT, M.SPORT, M.POSHOLD,
                             M.FLOWHOLD, M.ZIGZAG, M.GUIDED_NOGPS})
# the modes a vehicle enters by itself when a failsafe or the end of a mission sends it home / down
RETURN_MODES = ("RTL", "LAND", "SMART_RTL")


def mode_name(custom_mode: int) -> str:
    """The name ArduCopter prints for `custom_mode` ("MODE<n>" for a number it does not have)."""
    return MODE_NAMES.get(custom_mode, f"MODE{custom_mode}")


def mode_number(name: str) -> int:
    """The custom_mode of a mode name, any case; KeyError names the mode when there is none."""
    try:
        return COPTER_MODES[name.upper()]
    except KeyError:
        raise KeyError(f"ArduCopter has no mode {name!r}") from None
