"""Typed configuration of a simulated fleet (e.g. the `vehicles:` section of a training scenario).

>>> cfg = FleetConfig.model_validate({"count": 3, "speedup": 5, "faults": {"packet_loss_pct": 10}})
>>> cfg.count, cfg.faults.packet_loss_pct, cfg.home.alt_m
(3, 10.0, 10.0)
>>> from pydantic import ValidationError
>>> try:
...     FleetConfig.model_validate({"cout": 3})
... except ValidationError as exc:
...     print(exc.errors()[0]["loc"], exc.errors()[0]["type"])
('cout',) extra_forbidden
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from common.airframe import AirframeProfile


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HomeConfig(_Strict):
    lat: float = Field(32.0, ge=-90, le=90, title="home latitude, degrees")
    lon: float = Field(119.58, ge=-180, le=180, title="home longitude, degrees")
    alt_m: float = Field(10.0, title="home altitude, metres MSL")


class FaultConfig(_Strict):
    """Faults applied to every vehicle at start (change them at run time via vehicle.faults)."""

    packet_loss_pct: float = Field(0.0, ge=0, le=100, title="packets dropped each way, %")
    latency_ms: float = Field(0.0, ge=0, le=10_000, title="added latency each way, ms")
    wind_speed_m_s: float = Field(0.0, ge=0, le=40, title="steady wind speed, m/s")
    wind_from_deg: float = Field(0.0, ge=0, lt=360, title="wind direction it blows from, degrees")
    battery_pct: float | None = Field(None, ge=0, le=100, title="pack charge at start, %")


class FleetConfig(_Strict):
    count: int = Field(1, ge=1, le=200, title="number of vehicles")
    base_port: int = Field(5760, ge=1, le=65535, title="TCP port of vehicle 0 (vehicle i: +10*i)")
    home: HomeConfig = HomeConfig()
    home_spacing_m: float = Field(0.0, ge=0, title="vehicle i starts i*spacing metres east of home")
    speedup: float = Field(1.0, ge=0.05, le=100, title="vehicle time / wall time")
    fast_start: bool = Field(False, title="armable within ~1 s instead of ~41 s")
    param_style: Literal["4.7", "4.5"] = Field("4.7", title="parameter names: 4.7+ or 4.5/4.6")
    seed: int = Field(0, title="random seed (packet loss)")
    udp_gcs: str | None = Field(None, pattern=r"^[^:]+:\d+$", title="also send to this UDP GCS, HOST:PORT")
    battery_mah: float | None = Field(None, gt=0, title="pack capacity, mAh (None: SITL's 3300; the airframe "
                                      "profile's pack_mah, 13000 by default, covers the planner's 25 min at 10 m/s)")
    airframe: AirframeProfile = Field(AirframeProfile(), title="what the vehicles draw hovering and cruising "
                                      "(common/airframe.py)")
    params: dict[str, float] = Field(default_factory=dict, title="parameters stored before boot (4.7+ names, SI "
                                     "units), e.g. OA_TYPE: 2 for object avoidance round no-fly zones")
    faults: FaultConfig = FaultConfig()
