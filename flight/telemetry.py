"""`vehicle.telemetry`: the vehicle's state and streams of it."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from common.values import Pose
from flight.errors import FlightTimeout

if TYPE_CHECKING:
    from flight.core import VehicleCore
    from flight.state import VehicleState


class Telemetry:
    def __init__(self, vehicle: "VehicleCore") -> None:
        self._v = vehicle

    @property
    def state(self) -> "VehicleState":
        return self._v.state

    @property
    def pose(self) -> Pose | None:
        return self._v.state.pose

    async def poses(self, *, stale_after_s: float | None = 10.0) -> AsyncIterator[Pose]:
        """Every new Pose (GLOBAL_POSITION_INT + latest ATTITUDE and VFR_HUD) until the vehicle closes.

        A reader that falls more than 100 poses behind loses the oldest ones, never the newest.
        No new pose for `stale_after_s` raises FlightTimeout (None: wait for ever, e.g. across
        link losses).
        """
        q: asyncio.Queue = asyncio.Queue()
        self._v.pose_queues.append(q)
        try:
            while True:
                try:
                    pose = await asyncio.wait_for(q.get(), stale_after_s)
                except asyncio.TimeoutError:
                    raise FlightTimeout(f"no position for {stale_after_s:.0f} s",
                                        drone_id=self._v.drone_id, reasons=self._v.state.reasons(limit=3)) from None
                if pose is None:
                    return
                yield pose
        finally:
            if q in self._v.pose_queues:
                self._v.pose_queues.remove(q)

    def events(self):
        return self._v.events()
