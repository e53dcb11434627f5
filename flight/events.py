"""What a vehicle or the fleet tells its listeners: typed events, not log lines."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EventKind(StrEnum):
    LINK_LOST = "link_lost"
    LINK_REGAINED = "link_regained"
    ARMED = "armed"
    DISARMED = "disarmed"
    TOOK_OFF = "took_off"
    LANDED = "landed"
    MODE_CHANGED = "mode_changed"
    ITEM_REACHED = "item_reached"
    SORTIE_DONE = "sortie_done"
    FAILSAFE = "failsafe"
    LOW_BATTERY = "low_battery"
    RETURN_ROUTED = "return_routed"  # the controller flies the way home round no-fly zones
    VEHICLE_TEXT = "vehicle_text"  # a STATUSTEXT of severity WARNING or worse


@dataclass(frozen=True, slots=True)
class VehicleEvent:
    kind: EventKind
    drone_id: str
    time_s: float
    detail: str = ""
    seq: int | None = None

    def __str__(self) -> str:
        extra = f" #{self.seq}" if self.seq is not None else ""
        return f"{self.drone_id} {self.kind.value}{extra}" + (f": {self.detail}" if self.detail else "")
