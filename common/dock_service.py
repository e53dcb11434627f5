"""Dock service between sorties: a landed drone gets a charged pack before it flies again.

`DockService` is one dock's figures (swap time, spare packs, full-charge time); `PackPool`
tracks that dock's packs over a shift. With `spare_packs=None` a charged pack is always there
(the swap time alone holds a drone); otherwise the landed pack goes on the charger and the
next drone waits for the earliest pack that is full.

    pool = PackPool(DockService(swap_s=120, spare_packs=2, charge_s=2400))
    ready_s = pool.swap(landed_s=900.0)      # when the drone is ready again
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class DroneState(StrEnum):
    """Where a drone is in its sortie / dock cycle (live view, report)."""

    READY = "ready"  # on the dock, charged pack, waiting for a sortie
    FLYING = "flying"
    LANDING = "landing"  # coming home / descending (mission end, RTL, failsafe)
    SWAPPING = "swapping"  # on the dock, pack being swapped or waiting for a charged one
    PAUSED = "paused"  # held on the dock by the operator
    LOST = "lost"  # dropped out of the shift (failsafe it did not come back from, link lost for good)


@dataclass(frozen=True)
class DockService:
    swap_s: float = 180.0  # pack out, pack in, pre-flight checks
    spare_packs: int | None = None  # charged packs at the dock besides those in the drones; None = never short
    charge_s: float = 3600.0  # one pack from empty to full on the dock's charger


@dataclass
class PackPool:
    service: DockService
    ready_at_s: list[float] = field(default_factory=list)  # per spare pack: when it is full

    def __post_init__(self) -> None:
        if self.service.spare_packs is not None and not self.ready_at_s:
            self.ready_at_s = [0.0] * self.service.spare_packs

    def swap(self, landed_s: float) -> float:
        """Swap the pack of a drone that landed at `landed_s`; returns when it is ready to fly."""
        svc = self.service
        if svc.spare_packs is None:
            return landed_s + svc.swap_s
        if not self.ready_at_s:  # no spare: charge the drone's own pack
            return landed_s + svc.swap_s + svc.charge_s
        i = min(range(len(self.ready_at_s)), key=self.ready_at_s.__getitem__)
        start = max(landed_s, self.ready_at_s[i])
        self.ready_at_s[i] = start + svc.swap_s + svc.charge_s  # the landed pack goes on the charger
        return start + svc.swap_s
