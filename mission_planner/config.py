"""Typed planner configuration: one pydantic model per section, unknown keys rejected by name.

Defaults follow the patrol brief: 1080p gimbal camera (HFOV 82 deg) at 60 m AGL with 20 % side
overlap; the airframe profile's 25 min endurance with a 20 % reserve at 10 m/s; a 4 h horizon; cells up to 5 km2.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.airframe import AirframeProfile
from common.values import CameraModel

from .errors import GridProblem, PlanningError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraConfig(_Section):
    """The payload camera; lane spacing follows from its across-track footprint."""

    width_px: int = Field(1920, gt=0)
    height_px: int = Field(1080, gt=0)
    hfov_deg: float = Field(82.0, gt=1, lt=170, title="horizontal field of view")

    def model(self) -> CameraModel:
        return CameraModel(width_px=self.width_px, height_px=self.height_px, hfov_deg=self.hfov_deg)


class CoverageConfig(_Section):
    """How each cell is swept."""

    altitude_m: float = Field(60.0, gt=5, le=500, title="survey altitude above the dock (AGL)")
    side_overlap: float = Field(0.2, ge=0, lt=0.9, title="fraction of the footprint shared by adjacent lanes")
    lane_lead_in_m: float = Field(10.0, ge=0, le=200,
                                  title="lanes extend this far past the cell edge so the drone is straight and at speed")
    min_coverage: float = Field(0.99, gt=0, le=1, title="coverage below this is reported as a shortfall")
    no_fly_margin_m: float = Field(10.0, ge=0, le=500, title="no lane or transit comes closer to a no-fly zone")
    max_alt_m: float = Field(120.0, gt=0, title="legal ceiling; the highest transit layer must stay below it")


class FleetConfig(_Section):
    """The drones and their batteries."""

    drones: int = Field(12, ge=1, le=200)
    airframe: AirframeProfile = Field(AirframeProfile(), title="pack, consumption, speeds and reserve of the "
                                      "drones (common/airframe.py); the sortie length follows from it")
    battery_swap_min: float = Field(3.0, ge=0, title="ground time at the dock between sorties")
    launch_stagger_s: float = Field(30.0, ge=0, title="drones sharing a dock take off this far apart")
    transit_base_alt_m: float = Field(65.0, gt=0, title="lowest transit layer (drone 1)")
    transit_layer_step_m: float = Field(5.0, gt=0, title="each further drone transits this much higher")

    # Read from the airframe profile: the one place these figures are set.
    @property
    def sortie_budget_s(self) -> float:
        """Usable flight time of one battery (endurance minus reserve)."""
        return self.airframe.sortie_budget_s

    @property
    def endurance_min(self) -> float:
        return self.airframe.endurance_min

    @property
    def reserve(self) -> float:
        return self.airframe.reserve

    @property
    def cruise_speed_m_s(self) -> float:
        return self.airframe.cruise_speed_m_s

    @property
    def climb_speed_m_s(self) -> float:
        return self.airframe.climb_speed_m_s

    @property
    def descent_speed_m_s(self) -> float:
        return self.airframe.descent_speed_m_s

    @property
    def turn_time_s(self) -> float:
        return self.airframe.turn_time_s


class ScheduleConfig(_Section):
    """The patrol day."""

    horizon_h: float = Field(4.0, gt=0, le=48, title="plan revisits over this long")
    comprehensive_revisit_min: float = Field(120.0, gt=0, title="default revisit_min of a comprehensive cell")
    special_revisit_min: float = Field(30.0, gt=0, title="default revisit_min of a special cell")
    default_priority: int = Field(3, ge=1, le=5)


class GridConfig(_Section):
    """Input limits."""

    max_cell_area_km2: float = Field(5.0, gt=0)


class SolverConfig(_Section):
    """OR-Tools routing that improves the greedy sorties."""

    use_ortools: bool = True
    solution_limit: int = Field(200, ge=0, title="OR-Tools stops after this many solutions per dock: repeatable "
                                                 "plans (0 = only the time cap)")
    time_cap_s: float = Field(1.5, ge=0, le=600, title="total OR-Tools search time, split across docks (a safety "
                                                      "net; the solution limit normally ends the search first)")
    max_part_fraction: float = Field(0.6, gt=0.1, le=0.95,
                                     title="cells needing more of a battery than this are split into parts")


class PlannerConfig(_Section):
    camera: CameraConfig = CameraConfig()
    coverage: CoverageConfig = CoverageConfig()
    fleet: FleetConfig = FleetConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    grids: GridConfig = GridConfig()
    solver: SolverConfig = SolverConfig()

    @model_validator(mode="after")
    def _layers_below_ceiling(self) -> "PlannerConfig":
        top = self.transit_alt_m(self.fleet.drones - 1)
        if top > self.coverage.max_alt_m:
            raise ValueError(
                f"transit layers for {self.fleet.drones} drones reach {top:g} m, above max_alt_m "
                f"{self.coverage.max_alt_m:g} m; lower fleet.transit_base_alt_m or transit_layer_step_m")
        return self

    # Derived geometry every stage needs; kept here so lanes, coverage and the ledger agree.
    @property
    def footprint_m(self) -> tuple[float, float]:
        """(across-track, along-track) camera footprint at survey altitude."""
        return self.camera.model().footprint_m(self.coverage.altitude_m)

    @property
    def lane_spacing_m(self) -> float:
        return self.footprint_m[0] * (1.0 - self.coverage.side_overlap)

    def transit_alt_m(self, drone_index: int) -> float:
        """The transit layer of the drone at `drone_index` (0-based): no two drones share one."""
        return self.fleet.transit_base_alt_m + drone_index * self.fleet.transit_layer_step_m

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> "PlannerConfig":
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise PlanningError("invalid planner configuration", [_pydantic_problem(e) for e in exc.errors()]) from exc

    @classmethod
    def from_yaml(cls, path: str | Path) -> "PlannerConfig":
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise PlanningError(f"cannot read planner config {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise PlanningError(f"planner config {path} must be a mapping of sections")
        return cls.from_mapping(data)

    def with_overrides(self, **sections: dict[str, Any]) -> "PlannerConfig":
        """A copy with some fields of some sections replaced (None values ignored), re-validated."""
        data = self.model_dump()
        for section, values in sections.items():
            for k, v in values.items():
                if isinstance(v, dict):  # a nested section, e.g. fleet={"airframe": {...}}
                    data[section][k].update({kk: vv for kk, vv in v.items() if vv is not None})
                elif v is not None:
                    data[section][k] = v
        return self.from_mapping(data)


def _pydantic_problem(err: dict[str, Any]) -> GridProblem:
    where = ".".join(str(p) for p in err.get("loc", ())) or "config"
    return GridProblem(f"{where}: {err.get('msg')}")
