"""Arming checks as ArduCopter 4.8 runs them: why it would refuse to arm, in its own words
("PreArm: ..." every 30 s while not armable, "Arm: ..." in reply to an arm command)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from common.modes import NOT_ARMABLE
from sim.vehicles import failsafes, navigation

if TYPE_CHECKING:
    from sim.vehicles.ports import SimVehicle


def failures(v: SimVehicle) -> list[str]:
    """Why arming would be refused now (empty when armable); the last one is what PreArm says."""
    out: list[str] = []
    if not v.position_ok:
        if v.boot.gyros_settling(v.now):
            out.append("Gyros inconsistent")
        out.append("Need Position Estimate")
        return out
    if failsafes.fence_enabled(v):
        if not v.home_set:
            out.append("Fence requires position")
        elif failsafes.fence_breached_now(v):
            out.append("Vehicle breaching Polygon fence")
    if v.battery.voltage_v < v.params.get("BATT_ARM_VOLT") > 0:
        out.append("Battery 1 below minimum arming voltage")
    if navigation.oa_needs_reboot(v):
        out.append("Dijkstra OA requires reboot")
    return out


def refusals(v: SimVehicle, force: bool) -> list[str]:
    """The texts an arm command is refused with (empty: it arms); `force` skips the checks."""
    if force:
        return []
    if v.mode in NOT_ARMABLE:
        return ["Arm: Mode not armable"]
    return ["Arm: " + r for r in failures(v)]


def prearm_report_due(v: SimVehicle, now: float) -> bool:
    """Copter repeats its PreArm reason while it cannot arm: before it has a position, or while
    OA_TYPE changed since boot (Dijkstra's needs a reboot)."""
    needs_reboot = not v.armed and v.position_ok and navigation.oa_needs_reboot(v)
    return (not v.position_ok or needs_reboot) and v.boot.prearm_report_due(now)
