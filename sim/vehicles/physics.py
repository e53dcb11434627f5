"""Acceleration-limited point-mass kinematics of a multicopter and its battery.

Positions are metres east/north/up of home in a `LocalFrame`; the controllers ArduCopter runs
(position, velocity, land) are reduced to: accelerate at most `accel_m_s2` towards a velocity
that brakes in time to stop at the target (v = sqrt(2·a·d)), capped at the speed limit; climb
and descend at their own limits. Wind adds to the air velocity; if the wind is too strong for
the airframe the ground speed upwind drops, as it would.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from common.airframe import AirframeProfile

MAX_AIRSPEED_M_S = 22.0  # what the quad can hold against wind at full lean


@dataclass(slots=True)
class Kinematics:
    east_m: float = 0.0
    north_m: float = 0.0
    up_m: float = 0.0
    ve_m_s: float = 0.0
    vn_m_s: float = 0.0
    vu_m_s: float = 0.0
    yaw_deg: float = 0.0
    distance_flown_m: float = 0.0

    def step_to(self, dt: float, target_e: float, target_n: float, target_u: float, speed_m_s: float,
                accel_m_s2: float, up_m_s: float, down_m_s: float, wind_e: float, wind_n: float,
                climb_m_s: float | None = None) -> None:
        """Fly towards a 3-D target for `dt` seconds (horizontal and vertical independently).

        With `climb_m_s` the vertical axis follows that rate instead of the target altitude
        (landing, pilot throttle).
        """
        de, dn = target_e - self.east_m, target_n - self.north_m
        dist = math.hypot(de, dn)
        if dist > 1e-3:
            v_des = min(speed_m_s, math.sqrt(2.0 * accel_m_s2 * dist), dist / max(dt, 1e-3))
            we, wn = v_des * de / dist, v_des * dn / dist
        else:
            we = wn = 0.0
        self._accel_xy(dt, we, wn, accel_m_s2, wind_e, wind_n)
        du = target_u - self.up_m
        if climb_m_s is not None:
            vz_des = climb_m_s
        elif du >= 0:
            vz_des = min(up_m_s, math.sqrt(2.0 * 2.5 * du), du / max(dt, 1e-3))
        else:
            vz_des = -min(down_m_s, math.sqrt(2.0 * 2.5 * -du), -du / max(dt, 1e-3))
        self._accel_z(dt, vz_des)
        self._integrate(dt)

    def step_velocity(self, dt: float, ve: float, vn: float, vu: float, accel_m_s2: float,
                      wind_e: float, wind_n: float) -> None:
        self._accel_xy(dt, ve, vn, accel_m_s2, wind_e, wind_n)
        self._accel_z(dt, vu)
        self._integrate(dt)

    def _accel_xy(self, dt: float, we: float, wn: float, accel: float, wind_e: float, wind_n: float) -> None:
        # what the airframe can do: air velocity = ground - wind, bounded by MAX_AIRSPEED
        ae, an = we - wind_e, wn - wind_n
        air = math.hypot(ae, an)
        if air > MAX_AIRSPEED_M_S:
            ae, an = ae * MAX_AIRSPEED_M_S / air, an * MAX_AIRSPEED_M_S / air
            we, wn = ae + wind_e, an + wind_n
        dve, dvn = we - self.ve_m_s, wn - self.vn_m_s
        dv = math.hypot(dve, dvn)
        lim = accel * dt
        if dv > lim:
            dve, dvn = dve * lim / dv, dvn * lim / dv
        self.ve_m_s += dve
        self.vn_m_s += dvn

    def _accel_z(self, dt: float, vz_des: float) -> None:
        lim = 5.0 * dt
        self.vu_m_s += max(-lim, min(lim, vz_des - self.vu_m_s))

    def _integrate(self, dt: float) -> None:
        de, dn = self.ve_m_s * dt, self.vn_m_s * dt
        self.east_m += de
        self.north_m += dn
        self.up_m += self.vu_m_s * dt
        self.distance_flown_m += math.hypot(de, dn)

    def stop(self) -> None:
        self.ve_m_s = self.vn_m_s = self.vu_m_s = 0.0

    @property
    def groundspeed_m_s(self) -> float:
        return math.hypot(self.ve_m_s, self.vn_m_s)

    @property
    def course_deg(self) -> float:
        return math.degrees(math.atan2(self.ve_m_s, self.vn_m_s)) % 360.0


@dataclass(slots=True)
class Battery:
    """A 3S pack as ArduPilot's SITL models it: ~12.6 V until the capacity is used, then collapsing.

    SITL's default battery stays at 12.6 V while the consumed mAh climb (the recorded session
    drew 3340 mAh from a 3300 mAh pack at 12.6 V), so low-battery failsafes in the field come
    from BATT_LOW_MAH / BATT_CRT_MAH or from a voltage fault; past the rated capacity the voltage
    here falls steeply so a pack flown empty does trip BATT_LOW_VOLT.

    The current drawn aloft comes from the airframe profile (common/airframe.py): its hover
    current, rising with the square of the airspeed to its cruise current at its cruise speed
    (the defaults are SITL's quad: ~29 A hovering, ~31 A at 10 m/s), plus 2 A per m/s of climb.
    """

    capacity_mah: float = 3300.0
    consumed_mah: float = 0.0
    current_a: float = 0.0
    energy_wh: float = 0.0
    forced_voltage_v: float | None = None  # a battery fault / SIM_BATT_VOLTAGE
    hover_current_a: float = AirframeProfile().hover_current_a
    cruise_current_a: float = AirframeProfile().cruise_current_a
    cruise_speed_m_s: float = AirframeProfile().cruise_speed_m_s

    FULL_V = 12.6
    EMPTY_V = 10.2

    def use_airframe(self, airframe: AirframeProfile) -> None:
        """Draw what this airframe draws (the pack size stays BATT_CAPACITY's)."""
        self.hover_current_a = airframe.hover_current_a
        self.cruise_current_a = airframe.cruise_current_a
        self.cruise_speed_m_s = airframe.cruise_speed_m_s

    @property
    def remaining_frac(self) -> float:
        return max(0.0, 1.0 - self.consumed_mah / max(self.capacity_mah, 1.0))

    @property
    def remaining_pct(self) -> int:
        return int(round(100.0 * self.remaining_frac))

    @property
    def voltage_v(self) -> float:
        if self.forced_voltage_v is not None:
            return self.forced_voltage_v
        used = self.consumed_mah / max(self.capacity_mah, 1.0)
        rest = self.FULL_V - 0.3 * min(used, 1.0) - 25.0 * max(0.0, used - 1.0)
        return max(self.EMPTY_V - 1.0, rest - 0.002 * self.current_a)

    def set_remaining_pct(self, pct: float) -> None:
        self.consumed_mah = self.capacity_mah * (1.0 - pct / 100.0)

    def step(self, dt: float, armed: bool, airborne: bool, airspeed_m_s: float, climb_m_s: float) -> None:
        if not armed:
            self.current_a = 0.0
        elif not airborne:
            self.current_a = 3.0  # spinning at idle on the ground
        else:
            # more against wind or climbing
            rise = (self.cruise_current_a - self.hover_current_a) * (airspeed_m_s / self.cruise_speed_m_s) ** 2
            self.current_a = self.hover_current_a + rise + 2.0 * max(0.0, climb_m_s)
        mah = self.current_a * dt / 3.6
        self.consumed_mah += mah
        self.energy_wh += self.current_a * self.voltage_v * dt / 3600.0
