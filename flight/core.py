"""The vehicle a capability object needs: the narrow protocol `telemetry` and `params` work
against, so they depend on this description instead of on `flight.vehicle.Vehicle` (which
builds them: the two modules would otherwise import each other).
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from flight.config import FlightConfig
from flight.state import EventStream, VehicleState


class Subscription(Protocol):
    queue: asyncio.Queue


class VehicleCore(Protocol):
    """A connected vehicle: its identity and state, sending, message subscriptions, events."""

    drone_id: str
    config: FlightConfig
    state: VehicleState
    target_system: int
    target_component: int
    pose_queues: list[asyncio.Queue]

    def send(self, name: str, *args) -> None: ...

    def subscribe(self, types: set[str], pred: Callable | None = None): ...

    async def recv(self, sub: Subscription, timeout_s: float) -> object | None: ...

    def events(self) -> EventStream: ...
