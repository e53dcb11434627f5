"""Shared steps for the flight procedures: sorties shaped like the planner's, connecting a
controller to a simulated (or SITL) vehicle, waiting for events."""
from __future__ import annotations

import asyncio
import os

import pytest

from common.geo import distance_m, offset
from common.values import FenceZone, Mission, MissionItem, RallyPoint
from flight import FlightConfig, Vehicle
from flight.events import EventKind, VehicleEvent

SPEEDUP = 10.0


def get_sortie(home: tuple[float, float], legs_m: list[tuple[float, float]], *, alt_m: float = 25.0,
               name: str = "sortie", fence_half_m: float = 500.0) -> Mission:
    """Home, takeoff, one waypoint per (north, east) offset, RTL; an inclusion fence box and a rally point."""
    items = [MissionItem(16, home[0], home[1], 0.0, frame=0), MissionItem(22, alt_m=alt_m)]
    items += [MissionItem(16, *offset(*home, n, e), alt_m) for n, e in legs_m]
    items.append(MissionItem(20))
    h = fence_half_m
    fence = (FenceZone(True, tuple(offset(*home, n, e) for n, e in [(-h, -h), (h, -h), (h, h), (-h, h)])),)
    return Mission(tuple(items), fence=fence, rally=(RallyPoint(*offset(*home, -30, -30), 20.0),), name=name)


def get_config(speedup: float = SPEEDUP, **sections) -> FlightConfig:
    return FlightConfig.for_speedup(speedup, **sections)


async def connect(url: str, drone_id: str = "d1", speedup: float = SPEEDUP, **sections) -> Vehicle:
    v = Vehicle(url, drone_id=drone_id, config=get_config(speedup, **sections))
    await v.connect(timeout_s=20)
    return v


async def wait_event(events, kind: EventKind, timeout_s: float, pred=lambda ev: True) -> VehicleEvent:
    """The next event of `kind` (matching pred) from an event stream, or fail the test."""
    async def first() -> VehicleEvent:
        async for ev in events:
            if ev.kind == kind and pred(ev):
                return ev
        raise AssertionError(f"event stream ended before {kind}")
    try:
        return await asyncio.wait_for(first(), timeout_s)
    except asyncio.TimeoutError:
        raise AssertionError(f"no {kind.value} event within {timeout_s} s") from None


async def takeoff_and_start(v: Vehicle, mission: Mission) -> None:
    await v.mission.upload_sortie(mission)
    await v.action.arm(timeout_s=30)
    await v.action.takeoff(mission.items[1].alt_m)
    await v.action.start_mission()


def assert_near(lat: float, lon: float, target: tuple[float, float], within_m: float, what: str) -> None:
    d = distance_m(lat, lon, *target)
    assert d <= within_m, f"{what}: {d:.1f} m away (allowed {within_m} m)"


def sitl_target() -> str:
    """ARDUPILOT_SITL: the arducopter binary sim.sitl launches, or the URL of a SITL already running."""
    target = os.environ.get("ARDUPILOT_SITL")
    if not target:
        pytest.skip("ARDUPILOT_SITL not set: no real ArduCopter SITL to fly")
    return target
