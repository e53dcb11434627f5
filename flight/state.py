"""What the flight side knows of one vehicle: its state from telemetry, its texts, its events.

Plain values with no link behind them, so capability objects and tests can use them without a
`Vehicle` (flight/core.py describes the vehicle they need; flight/vehicle.py is that vehicle).
"""
from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from common.values import Pose
from flight.events import VehicleEvent

MAV_SYS_STATUS_PREARM_CHECK = 0x10000000


@dataclass(slots=True)
class VehicleText:
    time_s: float
    severity: int
    text: str


@dataclass(slots=True)
class VehicleState:
    """Everything telemetry has told us, newest values. Read it; only the vehicle core writes it."""

    drone_id: str = ""
    system_id: int = 0
    link_ok: bool = False
    last_heartbeat_s: float = 0.0  # time.monotonic()
    armed: bool = False
    mode: str = "UNKNOWN"
    custom_mode: int = -1
    system_status: int = 0
    pose: Pose | None = None
    time_boot_s: float = 0.0  # the vehicle's own clock (scales with a simulator's speedup)
    climb_m_s: float = 0.0
    battery_voltage_v: float | None = None
    battery_current_a: float | None = None
    battery_remaining_pct: float | None = None
    battery_consumed_mah: float | None = None  # BATTERY_STATUS current_consumed of the first battery
    gps_fix_type: int = 0
    satellites: int = 0
    ekf_flags: int = 0
    sensors_present: int = 0
    sensors_health: int = 0
    home: tuple[float, float, float] | None = None  # lat, lon, alt_msl_m
    mission_seq: int = 0
    mission_total: int = 0
    mission_state: int = 0
    last_reached_seq: int = -1
    landed_state: int = 0  # MAV_LANDED_STATE, 0 when the vehicle does not report it
    airborne: bool = False
    texts: deque = field(default_factory=lambda: deque(maxlen=64))

    @property
    def ekf_ok(self) -> bool:
        # attitude | horiz vel | vert vel | horiz pos abs | vert pos abs, and not const_pos_mode
        need = 0x01 | 0x02 | 0x04 | 0x10 | 0x20
        return (self.ekf_flags & need) == need and not self.ekf_flags & 0x80

    @property
    def armable(self) -> bool:
        """Pre-arm checks pass, as the vehicle reports them (SYS_STATUS PREARM bit) or, lacking that, a fix and home."""
        if self.sensors_present & MAV_SYS_STATUS_PREARM_CHECK:
            return bool(self.sensors_health & MAV_SYS_STATUS_PREARM_CHECK)
        return self.gps_fix_type >= 3 and self.home is not None

    def reasons(self, since_s: float = 0.0, limit: int = 4) -> tuple[str, ...]:
        """The vehicle's recent warning texts (pre-arm, failsafe, errors), newest last, de-duplicated."""
        out: list[str] = []
        for t in self.texts:
            if t.time_s < since_s:
                continue
            if t.severity <= 4 or t.text.startswith(("PreArm", "Arm", "Mission", "Fence")):
                if t.text in out:
                    out.remove(t.text)
                out.append(t.text)
        return tuple(out[-limit:])


class EventStream:
    """Async iterator over events; registered at creation so nothing emitted afterwards is missed.
    With several registries (one per vehicle of a fleet) their events arrive merged."""

    def __init__(self, *registries: list[asyncio.Queue]) -> None:
        self._registries = registries
        self._queue: asyncio.Queue = asyncio.Queue()
        for registry in registries:
            registry.append(self._queue)

    def __aiter__(self) -> "EventStream":
        return self

    async def __anext__(self) -> VehicleEvent:
        ev = await self._queue.get()
        if ev is None:
            self.close()
            raise StopAsyncIteration
        return ev

    def get_nowait(self) -> VehicleEvent | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def close(self) -> None:
        for registry in self._registries:
            if self._queue in registry:
                registry.remove(self._queue)
