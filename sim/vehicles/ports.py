"""What the simulated vehicle's parts need from it, as `typing.Protocol`s, plus the MAVLink numbers
they share.

The parts (navigation and physics, failsafes, telemetry, command handlers, link, faults) take
"a vehicle" but depend on this module only, never on `sim.vehicles.vehicle`: so `vehicle.py` can
import them and no import cycle ties the package into one unit. This module imports nothing of
`sim.vehicles` (the attribute types from leaf modules are named as strings, for readers).
"""
from __future__ import annotations

from typing import Any, Protocol

# STATUSTEXT severities (MAV_SEVERITY) ArduCopter uses
SEV_CRITICAL, SEV_WARNING, SEV_NOTICE, SEV_INFO, SEV_DEBUG = 2, 4, 5, 6, 7
# MAV_CMD_COMPONENT_ARM_DISARM param2 that forces it past the checks
FORCE_ARM_MAGIC, FORCE_DISARM_MAGIC = 2989, 21196
MAV_RESULT_ACCEPTED, MAV_RESULT_DENIED, MAV_RESULT_UNSUPPORTED, MAV_RESULT_FAILED = 0, 2, 3, 4


class FaultyVehicle(Protocol):
    """What `faults.VehicleFaults` touches: the battery and parameters it degrades."""

    battery: Any  # physics.Battery
    params: Any  # params.ParamStore

    @property
    def now(self) -> float: ...
    def on_gps_glitch_start(self) -> None: ...


class LinkedVehicle(Protocol):
    """What a GCS connection (`link`) needs: whom it talks for and where messages go."""

    sysid: int
    seed: int
    faults: Any  # faults.VehicleFaults

    def add_connection(self, conn: Any) -> None: ...
    def remove_connection(self, conn: Any) -> None: ...
    def handle_message(self, conn: Any, msg: Any) -> None: ...


class FlyingVehicle(Protocol):
    """What navigation and physics (`navigation`) read and steer: the body, the position
    controller's target, the RTL state, and the few vehicle facts a flight depends on."""

    kin: Any  # physics.Kinematics
    battery: Any  # physics.Battery
    params: Any  # params.ParamStore
    frame: Any  # common.geo.LocalFrame
    faults: Any  # faults.VehicleFaults
    oa: Any  # avoidance.ObjectAvoidance
    mission: Any  # mission_store.MissionStore (its rally list)
    armed: bool
    landed: bool
    land_complete: bool
    nav: Any  # navigation.Nav
    roi: tuple[float, float, float] | None
    wp_speed_override: float | None
    rc_throttle: int
    spool_until_s: float
    glitch_active: bool
    disarm_at_s: float | None
    rtl: Any  # navigation.ReturnState
    fence_enabled_runtime: bool | None

    @property
    def now(self) -> float: ...
    @property
    def airborne(self) -> bool: ...
    def est_en(self) -> tuple[float, float]: ...
    def send_text(self, severity: int, text: str) -> None: ...


class SimVehicle(FlyingVehicle, Protocol):
    """The vehicle as failsafes, telemetry and the command handlers see it: its flight state,
    failsafe flags and the actions they may take (arm, mode changes, missions, messages)."""

    index: int
    sysid: int
    boot: Any  # boot.BootSequence
    home_lat: float
    home_lon: float
    home_alt_msl: float
    home_set: bool
    origin_set: bool
    position_ok: bool
    booting: bool
    mode: int
    connections: list
    mission_cur: int
    mission_running: bool
    mission_complete: bool
    target_info: tuple[float, float, float] | None
    last_gcs_hb_s: float | None
    fs_gcs: bool
    fs_battery_low: bool
    fs_battery_crit: bool
    batt_low_since: float | None
    batt_crit_since: float | None
    fence_breaches: int
    fence_breach_count: int
    fence_breach_time_ms: int
    telemetry_cache: dict
    telemetry_cache_tick: int
    tick_seq: int

    @property
    def time_boot_ms(self) -> int: ...
    @property
    def truth(self) -> Any: ...
    def est_latlon(self) -> tuple[float, float]: ...
    def wind_en(self) -> tuple[float, float]: ...
    def broadcast(self, msg: Any) -> None: ...
    def send_heartbeat(self) -> None: ...
    def param_value(self, wire_name: str, index: int = 65535) -> Any: ...
    def arm(self, force: bool = False) -> tuple[int, list[str]]: ...
    def after_arm(self) -> None: ...
    def disarm(self, reason: str = "gcs") -> None: ...
    def set_mode(self, mode: int, announce_failure: bool = True) -> bool: ...
    def failsafe_action(self, action: str) -> None: ...
    def guided_goto(self, lat: float, lon: float, alt_rel_m: float, speed_m_s: float | None = None) -> bool: ...
    def start_mission_at(self, seq: int) -> None: ...
    def start_takeoff_spool(self) -> None: ...
    def reboot(self) -> None: ...
