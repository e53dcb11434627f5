"""Faults a test or a trainer injects into one vehicle, at start or while it flies.

Link faults act on every GCS connection of the vehicle. Times are vehicle seconds (they scale
with speedup, like the failsafe timeouts they are meant to trip); latency is wall milliseconds
because it models the network, not the vehicle.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sim import SimError

if TYPE_CHECKING:
    from sim.vehicles.ports import FaultyVehicle


class VehicleFaults:
    """`vehicle.faults`: packet loss, latency, link cut, wind, GPS glitch, battery faults."""

    def __init__(self, vehicle: FaultyVehicle) -> None:
        self._vehicle = vehicle
        self.packet_loss_pct = 0.0
        self.latency_ms = 0.0
        self._cut_until = -1.0
        self.gps_glitch_until = -1.0
        self.gps_glitch_offset_m = (0.0, 0.0)  # east, north

    # ---- link
    def set_packet_loss(self, pct: float) -> None:
        """Drop `pct` % of packets in each direction (independently per packet)."""
        if not 0.0 <= pct <= 100.0:
            raise SimError(f"packet loss must be within 0..100 %, got {pct}")
        self.packet_loss_pct = float(pct)

    def set_latency(self, ms: float) -> None:
        """Delay every packet in each direction by `ms` wall milliseconds."""
        if ms < 0:
            raise SimError(f"latency must be >= 0 ms, got {ms}")
        self.latency_ms = float(ms)

    def cut_link(self, seconds: float) -> None:
        """Nothing in or out on any GCS connection for `seconds` of vehicle time."""
        if seconds < 0:
            raise SimError(f"link cut must be >= 0 s, got {seconds}")
        self._cut_until = self._vehicle.now + seconds

    def restore_link(self) -> None:
        self._cut_until = -1.0

    @property
    def link_cut(self) -> bool:
        return self._vehicle.now < self._cut_until

    # ---- environment
    def set_wind(self, speed_m_s: float, from_deg: float) -> None:
        """Steady wind blowing FROM `from_deg` (meteorological, like SIM_WIND_DIR)."""
        if speed_m_s < 0:
            raise SimError(f"wind speed must be >= 0 m/s, got {speed_m_s}")
        self._vehicle.params.set("SIM_WIND_SPD", speed_m_s)
        self._vehicle.params.set("SIM_WIND_DIR", from_deg % 360.0)

    def gps_glitch(self, seconds: float, offset_m: float, bearing_deg: float = 45.0) -> None:
        """The GPS reports a position `offset_m` away (towards `bearing_deg`) for `seconds`.

        Like a real glitch the autopilot believes the GPS, so the vehicle really drifts the other
        way while it "corrects"; `truth` shows where it actually is.
        """
        import math

        if seconds <= 0 or offset_m < 0:
            raise SimError(f"GPS glitch needs seconds > 0 and offset_m >= 0, got {seconds}, {offset_m}")
        b = math.radians(bearing_deg)
        self.gps_glitch_offset_m = (offset_m * math.sin(b), offset_m * math.cos(b))
        self.gps_glitch_until = self._vehicle.now + seconds
        self._vehicle.on_gps_glitch_start()

    @property
    def gps_glitch_active(self) -> bool:
        return self._vehicle.now < self.gps_glitch_until

    # ---- battery
    def battery_fault(self, voltage_v: float) -> None:
        """Pin the measured pack voltage at `voltage_v` (like setting SIM_BATT_VOLTAGE)."""
        if not 0.0 < voltage_v < 60.0:
            raise SimError(f"battery voltage must be within 0..60 V, got {voltage_v}")
        self._vehicle.battery.forced_voltage_v = float(voltage_v)

    def clear_battery_fault(self) -> None:
        self._vehicle.battery.forced_voltage_v = None

    def drain_battery_to(self, pct: float) -> None:
        """Make the pack `pct` % full right now (consumed mAh and voltage follow)."""
        if not 0.0 <= pct <= 100.0:
            raise SimError(f"battery level must be within 0..100 %, got {pct}")
        self._vehicle.battery.set_remaining_pct(pct)
