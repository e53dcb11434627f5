"""Safety: the vehicle's own failsafes set on connect, and the controller's energy watch.

The vehicle's failsafes (FS_GCS_ENABLE, BATT_FS_LOW_ACT) act even when we cannot reach it; the
energy watch acts earlier, on distance: it sends a drone home while what is left still covers the
way to its dock plus the reserve, not when the voltage has already sagged.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.airframe import AirframeProfile
from common.geo import distance_m
from common.values import (MAV_CMD_DO_CHANGE_SPEED, MAV_CMD_NAV_LAND, MAV_CMD_NAV_LOITER_TIME,
                           MAV_CMD_NAV_RETURN_TO_LAUNCH, MAV_CMD_NAV_TAKEOFF, MAV_CMD_NAV_WAYPOINT, Mission)
from flight.config import EnergyConfig, SafetyConfig
from flight.errors import FlightError, FlightTimeout, ParamError
from flight.events import EventKind

if TYPE_CHECKING:
    from typing import Protocol

    from flight.action import Action
    from flight.core import VehicleCore
    from flight.params import Params
    from flight.state import VehicleState

    class SafetyVehicle(VehicleCore, Protocol):
        """What the failsafe settings and the energy watch need: the core, its consumption model,
        parameters and actions (RTL)."""
        consumption: ConsumptionModel
        params: Params
        action: Action

MAV_CMD_NAV_LOITER_UNLIM, MAV_CMD_NAV_LOITER_TURNS, MAV_CMD_NAV_SPLINE_WAYPOINT, MAV_CMD_NAV_DELAY = 17, 18, 82, 93

log = logging.getLogger(__name__)


async def apply_failsafe_params(vehicle: "SafetyVehicle", cfg: SafetyConfig) -> dict[str, float]:
    """Set GCS and battery failsafes; returns what was set. A missing parameter is reported, not fatal
    for the optional ones (BATT_* on a vehicle without a battery monitor)."""
    wanted: list[tuple[str, float, bool]] = [
        ("FS_GCS_ENABLE", cfg.fs_gcs_enable, True),
        ("FS_GCS_TIMEOUT", cfg.fs_gcs_timeout_s, False),
        ("BATT_FS_LOW_ACT", cfg.batt_fs_low_act, False),
    ]
    if cfg.batt_low_volt is not None:
        wanted.append(("BATT_LOW_VOLT", cfg.batt_low_volt, False))
    if cfg.batt_fs_crt_act is not None:
        wanted.append(("BATT_FS_CRT_ACT", cfg.batt_fs_crt_act, False))
    done: dict[str, float] = {}
    for name, value, required in wanted:
        try:
            done[name] = await vehicle.params.set(name, value)
        except ParamError as exc:
            if required:
                raise
            log.warning("%s: failsafe parameter not set: %s", vehicle.drone_id, exc)
    return done


def energy_needed_pct(distance_to_dock_m: float, alt_m: float, drain_pct_per_s: float, cfg: EnergyConfig,
                      reserve_pct: float) -> float:
    """Battery percent needed to fly home and land, reserve included.

    >>> round(energy_needed_pct(800.0, 30.0, 4.0 / 60, EnergyConfig(), 15.0), 1)
    23.0
    """
    flight_s = distance_to_dock_m / cfg.return_speed_m_s + max(0.0, alt_m) / cfg.descent_speed_m_s
    return flight_s * drain_pct_per_s + reserve_pct


class ConsumptionModel:
    """What one vehicle draws aloft: its airframe profile's currents until it has reported its own.

    The one place for the consumption model: the check before arming and the energy watch both ask
    it. While airborne, BATTERY_STATUS `current_consumed` (or, lacking it, SYS_STATUS
    `current_battery`) is integrated over the vehicle's own clock (a sped-up simulator gives real
    figures); after `learn_s` of flight its mean current replaces the profile's cruise current,
    and stays with the vehicle for its next sorties.
    """

    def __init__(self, airframe: AirframeProfile, learn_s: float = 20.0) -> None:
        self.airframe = airframe
        self.learn_s = learn_s
        self.capacity_mah: float | None = None  # BATT_CAPACITY as last read
        self._flown_s = 0.0
        self._used_mah = 0.0
        self._last: tuple[float, float | None] | None = None  # (time_boot_s, consumed mAh) of the last sample

    def observe(self, s: "VehicleState") -> None:
        """Take one telemetry sample (called on every BATTERY_STATUS)."""
        if not s.airborne:
            self._last = None
            return
        now, consumed = s.time_boot_s, s.battery_consumed_mah
        last, self._last = self._last, (now, consumed)
        if last is None or not 0 < now - last[0] < 5.0:  # first sample, reboot or a long gap: no interval
            return
        dt = now - last[0]
        if consumed is not None and last[1] is not None and consumed >= last[1]:
            used = consumed - last[1]
        elif s.battery_current_a is not None:
            used = s.battery_current_a * dt / 3.6
        else:
            return
        self._flown_s += dt
        self._used_mah += used

    @property
    def measured_current_a(self) -> float | None:
        """Mean current aloft as the vehicle reported it, once enough was flown to trust it."""
        if self._flown_s < self.learn_s:
            return None
        return self._used_mah * 3.6 / self._flown_s

    @property
    def scale(self) -> float:
        """Measured over the profile's cruise current (1 until measured; bounded against glitches)."""
        measured = self.measured_current_a
        if measured is None:
            return 1.0
        return min(3.0, max(0.5, measured / self.airframe.cruise_current_a))

    def mah_for(self, cruise_s: float, hover_s: float) -> float:
        return self.airframe.mah_for(cruise_s, hover_s) * self.scale

    def drain_pct_per_s(self) -> float:
        """Battery percent per second of flight at cruise, on the vehicle's pack (the profile's if unread)."""
        capacity = self.capacity_mah or self.airframe.pack_mah
        return self.airframe.cruise_mah_per_s * self.scale / capacity * 100.0


_LOCATED = (MAV_CMD_NAV_WAYPOINT, MAV_CMD_NAV_LOITER_TIME, MAV_CMD_NAV_LAND, MAV_CMD_NAV_TAKEOFF,
            MAV_CMD_NAV_LOITER_UNLIM, MAV_CMD_NAV_LOITER_TURNS, MAV_CMD_NAV_SPLINE_WAYPOINT)


# On RTL ArduCopter hovers RTL_LOIT_TIME (5 s by default) over home before it descends.
RTL_LOITER_S = 5.0


def sortie_flight_s(mission: Mission, home: tuple[float, float], airframe: AirframeProfile) -> tuple[float, float]:
    """(cruise s, hover s) to fly `mission` from `home`: the legs between its located items at the
    mission's speed (DO_CHANGE_SPEED, else the profile's cruise) plus the profile's turn time at
    each, back home unless it lands elsewhere; climbs, descents and the landing (its last metres
    at ArduCopter's LAND_SPEED), and LOITER_TIME / DELAY holds, count as hover.

    >>> from common.values import MissionItem
    >>> m = Mission((MissionItem(16), MissionItem(22, alt_m=30), MissionItem(16, 32.009, 119.58, 30),
    ...              MissionItem(20)))
    >>> cruise_s, hover_s = sortie_flight_s(m, (32.0, 119.58), AirframeProfile())
    >>> round(cruise_s), round(hover_s)
    (206, 48)
    """
    speed = airframe.cruise_speed_m_s
    here, alt = home, 0.0
    cruise_s = hover_s = 0.0
    ends_away = False

    def climb_to(target_m: float) -> float:
        rise = target_m - alt
        return rise / airframe.climb_speed_m_s if rise > 0 else -rise / airframe.descent_speed_m_s

    for item in mission.items[1:]:
        cmd = item.command
        if cmd == MAV_CMD_DO_CHANGE_SPEED and item.param2 > 0:
            speed = item.param2
        elif cmd == MAV_CMD_NAV_DELAY:
            hover_s += max(0.0, item.param1)
        elif cmd == MAV_CMD_NAV_RETURN_TO_LAUNCH:
            ends_away = False
            break
        elif cmd in _LOCATED:
            target = (item.lat, item.lon) if (item.lat or item.lon) else here
            leg_m = distance_m(*here, *target)
            cruise_s += leg_m / speed + (airframe.turn_time_s if leg_m > 1.0 else 0.0)
            if cmd == MAV_CMD_NAV_LAND:
                hover_s += airframe.landing_s(alt)
                here, alt, ends_away = target, 0.0, distance_m(*target, *home) > 5.0
                continue
            hover_s += climb_to(item.alt_m)
            here, alt, ends_away = target, item.alt_m, True
            if cmd == MAV_CMD_NAV_LOITER_TIME:
                hover_s += max(0.0, item.param1)
    if alt > 0 or ends_away:  # the RTL home (ours after the last item, or the mission's own) and its landing
        cruise_s += distance_m(*here, *home) / airframe.cruise_speed_m_s + airframe.turn_time_s
        hover_s += RTL_LOITER_S + airframe.landing_s(alt)
    return cruise_s, hover_s


@dataclass(frozen=True)
class SortieEnergy:
    """Does a sortie fit the vehicle's battery? The figures the verdict rests on."""

    flight_s: float
    needed_mah: float
    capacity_mah: float
    left_mah: float
    reserve: float
    measured: bool  # consumption refined by the vehicle's own reports

    @property
    def usable_mah(self) -> float:
        return max(0.0, self.left_mah - self.reserve * self.capacity_mah)

    @property
    def fits(self) -> bool:
        return self.needed_mah <= self.usable_mah

    def describe(self) -> str:
        how = "as measured in flight" if self.measured else "at the airframe profile's consumption"
        return (f"needs \u2248{self.needed_mah:.0f} mAh ({self.flight_s / 60:.1f} min {how}), vehicle has "
                f"{self.usable_mah:.0f} mAh usable (BATT_CAPACITY {self.capacity_mah:.0f} mAh, "
                f"{self.left_mah:.0f} mAh left, {self.reserve * 100:.0f} % kept in reserve)")


async def sortie_energy(vehicle: "SafetyVehicle", mission: Mission) -> SortieEnergy:
    """The energy verdict for flying `mission` on `vehicle` now (reads BATT_CAPACITY)."""
    v, model = vehicle, vehicle.consumption
    skip = "(FlightConfig.check_energy=False / --no-energy-check flies without this check)"
    try:
        model.capacity_mah = await v.params.get("BATT_CAPACITY")
    except ParamError as exc:
        raise FlightError(f"cannot judge the battery: BATT_CAPACITY unreadable ({exc.detail}) {skip}",
                          drone_id=v.drone_id) from exc
    try:
        await v.wait_until(lambda s: s.battery_remaining_pct is not None, 10.0, what="battery telemetry")
    except FlightTimeout as exc:
        raise FlightError(f"cannot judge the battery: the vehicle reports no charge left (SYS_STATUS "
                          f"battery_remaining; is BATT_MONITOR set?) {skip}", drone_id=v.drone_id) from exc
    s = v.state
    capacity = model.capacity_mah
    if s.battery_consumed_mah is not None and capacity > 0:
        left = max(0.0, capacity - s.battery_consumed_mah)
    else:
        left = capacity * (s.battery_remaining_pct or 0.0) / 100.0
    home = s.home[:2] if s.home else _first_location(mission)
    cruise_s, hover_s = sortie_flight_s(mission, home, model.airframe)
    return SortieEnergy(flight_s=cruise_s + hover_s, needed_mah=model.mah_for(cruise_s, hover_s),
                        capacity_mah=capacity, left_mah=left, reserve=model.airframe.reserve,
                        measured=model.measured_current_a is not None)


def _first_location(mission: Mission) -> tuple[float, float]:
    for item in mission.items:
        if item.lat or item.lon:
            return item.lat, item.lon
    return 0.0, 0.0


class EnergyWatch:
    """Sends the vehicle home (RTL) once remaining battery no longer covers the way to the dock.

    Run as a task next to a sortie: `async with EnergyWatch(v, dock): ...`. Fires at most once per
    flight and emits a LOW_BATTERY event saying how much was left and how much was needed.
    """

    def __init__(self, vehicle: "SafetyVehicle", dock: tuple[float, float] | None = None,
                 cfg: EnergyConfig | None = None, period_s: float | None = None) -> None:
        self._v = vehicle
        self._dock = dock
        self.cfg = cfg or vehicle.config.energy
        self.period_s = period_s or self.cfg.check_period_s
        self.triggered = False
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "EnergyWatch":
        if self.cfg.enabled and self._v.consumption.capacity_mah is None:
            try:  # the pack the percentages are of (the check before arming has usually read it)
                self._v.consumption.capacity_mah = await self._v.params.get("BATT_CAPACITY")
            except FlightError as exc:
                log.warning("%s: BATT_CAPACITY unreadable, assuming the airframe's pack: %s", self._v.drone_id, exc)
        if self.cfg.enabled:
            self._task = asyncio.create_task(self._run(), name=f"{self._v.drone_id}-energy-watch")
        return self

    async def __aexit__(self, *exc) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, FlightError):
                pass

    def check(self) -> tuple[float, float] | None:
        """(remaining %, needed %) now, or None without the telemetry to judge."""
        s = self._v.state
        if s.pose is None or s.battery_remaining_pct is None:
            return None
        dock = self._dock or (s.home[:2] if s.home else None)
        if dock is None:
            return None
        rate = self._v.consumption.drain_pct_per_s()
        needed = energy_needed_pct(self._way_home_m(dock), s.pose.alt_rel_m, rate, self.cfg,
                                   self._v.consumption.airframe.reserve * 100.0)
        return s.battery_remaining_pct, needed

    def _way_home_m(self, dock: tuple[float, float]) -> float:
        """Distance to the dock as it will be flown: round the fence's no-fly zones if it has any."""
        pose = self._v.state.pose
        assert pose is not None
        here = (pose.lat, pose.lon)
        fa = self._v.fence_avoidance
        if fa is not None and fa.no_fly.crosses(here, dock):  # most checks: clear straight home, no routing
            try:
                pts = (here, *fa.no_fly.route(here, dock))
                return sum(distance_m(*a, *b) for a, b in zip(pts, pts[1:]))
            except FlightError:
                pass  # walled in: the straight distance is the best guess left
        return distance_m(*here, *dock)

    async def _run(self) -> None:
        v = self._v
        while True:
            await asyncio.sleep(self.period_s)
            s = v.state
            if not s.airborne:
                self.triggered = False
                continue
            got = self.check()
            if got is None or self.triggered:
                continue
            remaining, needed = got
            if remaining <= needed and s.mode not in ("RTL", "LAND", "SMART_RTL"):
                self.triggered = True
                v.emit(EventKind.LOW_BATTERY, f"{remaining:.0f} % left, {needed:.0f} % needed to reach the dock; RTL")
                try:
                    await v.action.return_home()
                except FlightError as exc:
                    log.error("%s: energy watch could not send RTL: %s", v.drone_id, exc)
                    self.triggered = False
            elif remaining <= needed and not self.triggered:
                self.triggered = True
                v.emit(EventKind.LOW_BATTERY, f"{remaining:.0f} % left, already returning ({s.mode})")
