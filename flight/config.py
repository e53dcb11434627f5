"""Typed flight configuration: one pydantic model per section, unknown keys rejected by name."""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.airframe import AirframeProfile


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LinkConfig(_Section):
    """How we talk to one vehicle."""

    heartbeat_timeout_s: float = Field(3.0, gt=0, title="link counts as lost after this long without a HEARTBEAT")
    connect_timeout_s: float = Field(30.0, gt=0, title="first HEARTBEAT must arrive within this")
    reconnect_interval_s: float = Field(1.0, gt=0, title="pause between reconnect attempts of a broken stream link")
    gcs_heartbeat_hz: float = Field(1.0, gt=0, le=50, title="our HEARTBEAT rate; raise it to the speedup for a "
                                    "sped-up simulator, whose FS_GCS_TIMEOUT runs in vehicle time")
    stream_rate_hz: int = Field(4, ge=1, le=50, title="telemetry rate requested on connect")
    command_timeout_s: float = Field(1.0, gt=0, title="wait this long for one COMMAND_ACK before resending")
    command_attempts: int = Field(5, ge=1, title="sends of one command before giving up")
    source_system: int = Field(255, ge=1, le=255, title="our MAVLink system id (GCS)")
    source_component: int = Field(190, ge=0, le=255, title="our MAVLink component id (MAV_COMP_ID_MISSIONPLANNER)")
    signing_key_file: Path | None = Field(None, title="MAVLink 2 signing key: 32 raw bytes, 64 hex chars or a passphrase")
    signing_link_id: int = Field(0, ge=0, le=255)


class TransferConfig(_Section):
    """Mission / fence / rally transfers (one item at a time, per-item retries)."""

    item_timeout_s: float = Field(0.25, gt=0, title="resend an item or request after this long without an answer")
    item_attempts: int = Field(40, ge=1, title="sends of one item before the transfer is abandoned")
    transfer_attempts: int = Field(3, ge=1, title="whole-list attempts (upload + verify) before giving up")
    download_window: int = Field(4, ge=1, le=32, title="item requests kept in flight while downloading")


class SafetyConfig(_Section):
    """Vehicle failsafes set on connect, so a drone that loses us or its battery comes home by itself."""

    apply_on_connect: bool = True
    fs_gcs_enable: int = Field(1, ge=0, le=7, title="FS_GCS_ENABLE: 1 = RTL when the GCS link is lost")
    fs_gcs_timeout_s: float = Field(5.0, gt=0, title="FS_GCS_TIMEOUT")
    batt_fs_low_act: int = Field(2, ge=0, le=6, title="BATT_FS_LOW_ACT: 2 = RTL")
    batt_low_volt: float | None = Field(None, ge=0, title="BATT_LOW_VOLT; None leaves the vehicle's value")
    batt_fs_crt_act: int | None = Field(None, ge=0, le=6, title="BATT_FS_CRT_ACT; None leaves it")
    enable_fence: bool = Field(True, title="set FENCE_ENABLE=1 after uploading a sortie's fence")
    fence_type: int = Field(5, ge=0, le=15, title="FENCE_TYPE set with the fence: 1 max alt + 4 polygon; the "
                            "default 7 adds a 150 m circle (FENCE_RADIUS) that breaks longer patrols")
    fence_alt_max_m: float | None = Field(None, gt=0, title="FENCE_ALT_MAX; None leaves the vehicle's value")


class EnergyConfig(_Section):
    """The controller's own energy watch (in addition to the vehicle's voltage failsafe) and the check
    before arming. The reserve and the consumption come from the airframe profile (`FlightConfig.airframe`)."""

    enabled: bool = True
    return_speed_m_s: float = Field(8.0, gt=0, title="horizontal speed on the way home")
    descent_speed_m_s: float = Field(1.5, gt=0, title="landing descent speed")
    min_learn_s: float = Field(20.0, gt=0, title="vehicle seconds of flight before the measured current replaces the airframe profile's")
    check_period_s: float = Field(1.0, gt=0, le=60, title="how often the watch checks, wall seconds (a sped-up "
                                  "simulator wants it as often in vehicle time)")


class AvoidanceConfig(_Section):
    """Keeping out of the fence's no-fly zones on the way home (see flight/avoidance.py)."""

    enabled: bool = Field(True, title="when a sortie fence has exclusion zones, switch on the vehicle's object "
                          "avoidance (OA_TYPE 2) or fly returns round them from the controller")
    margin_m: float = Field(10.0, gt=0, le=100, title="distance kept from a no-fly zone (OA_MARGIN_MAX)")
    reboot_to_enable: bool = Field(True, title="reboot a disarmed vehicle so a newly set OA_TYPE takes effect")
    reboot_timeout_s: float = Field(90.0, gt=0, title="the vehicle must be back (HEARTBEAT and home) within this")
    leg_timeout_s: float = Field(300.0, gt=0, title="one controller-flown leg home must be flown within this")


class FlightConfig(_Section):
    link: LinkConfig = LinkConfig()
    transfer: TransferConfig = TransferConfig()
    safety: SafetyConfig = SafetyConfig()
    energy: EnergyConfig = EnergyConfig()
    avoidance: AvoidanceConfig = AvoidanceConfig()
    airframe: AirframeProfile = Field(AirframeProfile(), title="pack, consumption, speeds and reserve "
                                      "(common/airframe.py), as the planner planned with")
    check_energy: bool = Field(True, title="refuse to arm for a sortie the battery cannot hold")
    takeoff_alt_m: float = Field(20.0, gt=0, title="takeoff altitude when the mission has no NAV_TAKEOFF")
    sortie_timeout_s: float = Field(3600.0, gt=0, title="a sortie that takes longer is aborted with RTL")

    @classmethod
    def for_speedup(cls, speedup: float, **sections) -> "FlightConfig":
        """Settings for a simulator (or SITL) running `speedup` times faster than the wall clock.

        The vehicle's failsafe timers run in vehicle time, so our heartbeat must come `speedup`
        times as often and our own link-loss verdict `speedup` times sooner (not below 1 s, so a
        busy event loop is not taken for a lost link).
        """
        link = dict(sections.pop("link", {}))
        link.setdefault("gcs_heartbeat_hz", min(50.0, max(1.0, speedup)))
        link.setdefault("heartbeat_timeout_s", max(1.0, 3.0 / speedup))
        safety = dict(sections.pop("safety", {}))
        energy = dict(sections.pop("energy", {}))
        energy.setdefault("check_period_s", max(0.05, 1.0 / speedup))
        return cls(link=LinkConfig(**link), safety=SafetyConfig(**safety), energy=EnergyConfig(**energy), **sections)

    @model_validator(mode="after")
    def _check(self) -> "FlightConfig":
        if 1.0 / self.link.gcs_heartbeat_hz >= self.safety.fs_gcs_timeout_s:
            raise ValueError("link.gcs_heartbeat_hz is too slow: one heartbeat per safety.fs_gcs_timeout_s "
                             "would trip the vehicle's GCS failsafe")
        return self
