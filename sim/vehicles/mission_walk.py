"""Which mission item AUTO flies next: DO_JUMPs followed, DO / condition items collected on the
way, as ArduCopter's AP_Mission walks its stored list. Pure: the vehicle runs the result.

>>> from common.ardupilot_storage import WireItem
>>> wp = WireItem(16, 3, 0, 0, 0, 0, 1, 1, 20.0, 1)
>>> jump = WireItem(177, 0, 1.0, 1.0, 0, 0, 0, 0, 0.0, 1)
>>> speed = WireItem(178, 0, 0, 5.0, 0, 0, 0, 0, 0.0, 1)
>>> items = [wp, wp, speed, jump, wp]
>>> counts = {}
>>> next_nav_item(items, 2, counts)  # DO_CHANGE_SPEED collected, DO_JUMP to 1 taken once
(1, [2], [3])
>>> next_nav_item(items, 2, counts)  # the jump has had its one repeat: on to item 4
(4, [2], [])
"""
from __future__ import annotations

from common.ardupilot_storage import WireItem

DO_JUMP = 177
_CONDITIONS = (112, 113, 114, 115)  # CONDITION_DELAY, _CHANGE_ALT, _DISTANCE, _YAW


def next_nav_item(items: list[WireItem], seq: int, jump_counts: dict[int, int]) -> tuple[int, list[int], list[int]]:
    """From `seq` on: (the NAV item to fly, or len(items) when the mission is done; the DO and
    condition items passed on the way; the DO_JUMPs taken, each counted in `jump_counts`)."""
    do_items: list[int] = []
    jumps: list[int] = []
    seq = max(1, seq)
    guard = 0
    while seq < len(items) and guard < 1000:
        guard += 1
        it = items[seq]
        if it.command == DO_JUMP:
            target, repeat = int(it.param1), int(it.param2)
            done = jump_counts.get(seq, 0)
            if repeat < 0 or done < repeat:
                jump_counts[seq] = done + 1
                jumps.append(seq)
                seq = max(1, target)
                continue
            seq += 1
            continue
        if it.command >= 176 or it.command in _CONDITIONS:
            do_items.append(seq)
            seq += 1
            continue
        break
    return min(seq, len(items)), do_items, jumps


def starts_with_takeoff(items: list[WireItem]) -> bool:
    for it in items[1:]:
        if it.command == 22:
            return True
        if it.command < 176 or it.command >= 5000:
            return False
    return False


CMD_NAMES = {16: "WP", 17: "LoitUnlim", 18: "LoitTurns", 19: "LoitTime", 20: "RTL", 21: "Land", 22: "Takeoff",
              82: "SplineWP", 92: "GuidedEnable", 93: "Delay", 112: "CondDelay", 113: "CondChangeAlt",
              114: "CondDist", 115: "CondYaw", 177: "Jump", 178: "ChangeSpeed", 179: "SetHome", 181: "SetRelay",
              182: "RepeatRelay", 183: "SetServo", 184: "RepeatServo", 189: "LandStart", 195: "ROILocation",
              197: "ROINone", 201: "ROI", 203: "DigiCamCtrl", 205: "MountControl", 206: "CamTrigDistance",
              207: "FenceEnable", 211: "Gripper"}


def cmd_name(cmd: int) -> str:
    return CMD_NAMES.get(cmd, "?")
