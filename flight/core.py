"""The vehicle a capability object needs: the narrow protocol `telemetry`, `params` and `action`
work against, so they depend on this description instead of on `flight.vehicle.Vehicle` (which
builds them: the modules would otherwise import each other).
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from flight.avoidance import FenceAvoidance
from flight.config import FlightConfig
from flight.errors import CommandRejected
from flight.events import EventKind
from flight.state import EventStream, VehicleState

StateTest = Callable[[VehicleState], bool]
AbortTest = Callable[[VehicleState], "str | None"]


class Subscription(Protocol):
    queue: asyncio.Queue


class VehicleCore(Protocol):
    """A connected vehicle: identity and state, sending and commanding, waiting on its state,
    message subscriptions and events. `flight.vehicle.Vehicle` is one."""

    drone_id: str
    config: FlightConfig
    state: VehicleState
    target_system: int
    target_component: int
    pose_queues: list[asyncio.Queue]
    fence_avoidance: FenceAvoidance | None
    link_losses: int

    def send(self, name: str, *args) -> None: ...

    def request_streams(self) -> None: ...

    def request_message(self, msg_id: int) -> None: ...

    async def command_long(self, command: int, *params: float, timeout_s: float | None = None,
                           attempts: int | None = None, error: type[CommandRejected] = CommandRejected,
                           what: str = "") -> object: ...

    async def command_int(self, command: int, *, frame: int = ..., params: tuple[float, float, float, float] = ...,
                          lat: float = 0.0, lon: float = 0.0, alt_m: float = 0.0, timeout_s: float | None = None,
                          attempts: int | None = None, error: type[CommandRejected] = CommandRejected,
                          what: str = "") -> object: ...

    def note_commanded_mode(self, custom_mode: int) -> None: ...

    def subscribe(self, types: set[str], pred: Callable | None = None): ...

    async def recv(self, sub: Subscription, timeout_s: float) -> object | None: ...

    async def wait_until(self, pred: StateTest, timeout_s: float, *, what: str, check_link: bool = True,
                         tolerate_link_loss: bool = False, abort: AbortTest | None = None) -> VehicleState: ...

    async def wait_armable(self, timeout_s: float = 90.0) -> VehicleState: ...

    async def wait_mode(self, mode: str, timeout_s: float = 10.0) -> VehicleState: ...

    async def wait_altitude(self, min_m: float, max_m: float = 1e9, timeout_s: float = 60.0,
                            minimum_duration_s: float = 0.0, abort: AbortTest | None = None) -> VehicleState: ...

    async def wait_position(self, lat: float, lon: float, within_m: float = 5.0, timeout_s: float = 120.0,
                            abort: AbortTest | None = None) -> VehicleState: ...

    def emit(self, kind: EventKind, detail: str = "", seq: int | None = None) -> None: ...

    def events(self) -> EventStream: ...
