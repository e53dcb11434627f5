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

from common.geo import distance_m
from flight.config import EnergyConfig, SafetyConfig
from flight.errors import FlightError, ParamError
from flight.events import EventKind

if TYPE_CHECKING:
    from flight.vehicle import Vehicle

log = logging.getLogger(__name__)


async def apply_failsafe_params(vehicle: "Vehicle", cfg: SafetyConfig) -> dict[str, float]:
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


def energy_needed_pct(distance_to_dock_m: float, alt_m: float, drain_pct_per_s: float, cfg: EnergyConfig) -> float:
    """Battery percent needed to fly home and land, reserve included.

    >>> round(energy_needed_pct(800.0, 30.0, 4.0 / 60, EnergyConfig()), 1)
    23.0
    """
    flight_s = distance_to_dock_m / cfg.return_speed_m_s + max(0.0, alt_m) / cfg.descent_speed_m_s
    return flight_s * drain_pct_per_s + cfg.reserve_pct


@dataclass
class _Drain:
    """Measured battery drain while airborne (percent per vehicle second, so a sped-up simulator
    gives the same figures as the real thing), from the first airborne sample."""

    t0: float | None = None
    pct0: float | None = None

    def rate(self, now: float, pct: float, cfg: EnergyConfig) -> float:
        nominal = cfg.nominal_drain_pct_per_min / 60.0
        if self.t0 is None or self.pct0 is None or now < self.t0:  # now < t0: the vehicle rebooted
            self.t0, self.pct0 = now, pct
            return nominal
        elapsed = now - self.t0
        if elapsed < cfg.min_learn_s or pct >= self.pct0:
            return nominal
        return max(nominal * 0.5, (self.pct0 - pct) / elapsed)


class EnergyWatch:
    """Sends the vehicle home (RTL) once remaining battery no longer covers the way to the dock.

    Run as a task next to a sortie: `async with EnergyWatch(v, dock): ...`. Fires at most once per
    flight and emits a LOW_BATTERY event saying how much was left and how much was needed.
    """

    def __init__(self, vehicle: "Vehicle", dock: tuple[float, float] | None = None,
                 cfg: EnergyConfig | None = None, period_s: float | None = None) -> None:
        self._v = vehicle
        self._dock = dock
        self.cfg = cfg or vehicle.config.energy
        self.period_s = period_s or self.cfg.check_period_s
        self.triggered = False
        self._task: asyncio.Task | None = None
        self._drain = _Drain()

    async def __aenter__(self) -> "EnergyWatch":
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
        rate = self._drain.rate(s.time_boot_s, s.battery_remaining_pct, self.cfg) if s.airborne else \
            self.cfg.nominal_drain_pct_per_min / 60.0
        needed = energy_needed_pct(self._way_home_m(dock), s.pose.alt_rel_m, rate, self.cfg)
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
                self._drain = _Drain()
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
