"""The airframe profile: what one drone's pack holds, what it draws, how fast it flies.

One profile is shared by the planner (how long a sortie may be), `patrol fly` / `Fleet` /
`patrol run` (does this sortie fit the battery before arming) and the simulator (what its
vehicles draw). Defaults: a 13 000 mAh pack drawn at 31.2 A cruising at 10 m/s (520 mAh/min,
25 min) and 29 A hovering, as ArduPilot's SITL quad draws (../shared/ardupilot/BEHAVIOUR.md),
20 % kept in reserve.

>>> p = AirframeProfile()
>>> p.endurance_min, p.sortie_budget_s, p.usable_mah
(25.0, 1200.0, 10400.0)
>>> round(p.mah_for(cruise_s=600, hover_s=60))
5683
>>> from pydantic import ValidationError
>>> try:
...     AirframeProfile.model_validate({"pack_mAh": 5000})
... except ValidationError as exc:
...     print(exc.errors()[0]["loc"], exc.errors()[0]["type"])
('pack_mAh',) extra_forbidden
"""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


# ArduCopter lands its last LAND_FINAL_M at LAND_SPEED (0.5 m/s by default), slower than the
# profile's descent speed: part of every landing, planned or checked.
LAND_FINAL_M, LAND_FINAL_SPEED_M_S = 10.0, 0.5


class AirframeProfile(BaseModel):
    """One drone type. Add fields here (e.g. dock battery swaps) rather than beside it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pack_mah: float = Field(13000.0, gt=0, title="usable capacity of a full pack, mAh (BATT_CAPACITY)")
    cruise_current_a: float = Field(31.2, gt=0, title="current drawn flying at cruise_speed_m_s, A")
    hover_current_a: float = Field(29.0, gt=0, title="current drawn hovering, climbing or descending, A")
    cruise_speed_m_s: float = Field(10.0, gt=0.5, le=30, title="horizontal speed of survey and transit legs")
    climb_speed_m_s: float = Field(3.0, gt=0.1, title="vertical speed climbing")
    descent_speed_m_s: float = Field(1.5, gt=0.1, title="vertical speed descending and landing")
    turn_time_s: float = Field(3.0, ge=0, title="time lost decelerating and turning at each waypoint")
    reserve: float = Field(0.2, ge=0, lt=0.9, title="fraction of the pack left unused on landing")

    @property
    def cruise_mah_per_s(self) -> float:
        return self.cruise_current_a / 3.6

    @property
    def hover_mah_per_s(self) -> float:
        return self.hover_current_a / 3.6

    @property
    def endurance_min(self) -> float:
        """Flight time of a full pack at cruise."""
        return self.pack_mah / self.cruise_mah_per_s / 60.0

    @property
    def usable_mah(self) -> float:
        """What one full pack may spend: the pack less the reserve."""
        return self.pack_mah * (1.0 - self.reserve)

    @property
    def sortie_budget_s(self) -> float:
        """Usable flight time of one full pack at cruise (endurance minus reserve)."""
        return self.endurance_min * 60.0 * (1.0 - self.reserve)

    def landing_s(self, from_alt_m: float) -> float:
        """Descent and landing from `from_alt_m`: the profile's descent speed, the last metres slower.

        >>> round(AirframeProfile().landing_s(60.0), 1)
        53.3
        """
        final = min(max(0.0, from_alt_m), LAND_FINAL_M)
        return (max(0.0, from_alt_m) - final) / self.descent_speed_m_s + final / LAND_FINAL_SPEED_M_S

    def mah_for(self, cruise_s: float, hover_s: float) -> float:
        """Charge spent flying `cruise_s` at cruise and `hover_s` hovering, climbing or descending."""
        return cruise_s * self.cruise_mah_per_s + hover_s * self.hover_mah_per_s

    @classmethod
    def from_yaml(cls, path: str | Path) -> "AirframeProfile":
        """A profile from a YAML mapping of the fields above; ValueError naming what is wrong."""
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read airframe profile {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"airframe profile {path} must be a mapping of fields")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"airframe profile {path}: {problems}") from exc
