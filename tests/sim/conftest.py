"""Fixtures for the simulator's tests: a ground-station factory that closes its links."""
import pytest

from tests.sim.gcs import TestGcs


@pytest.fixture
async def gcs_link():
    links = []

    async def connect(url: str, **kw) -> TestGcs:
        link = await TestGcs.connect(url, **kw)
        links.append(link)
        return link

    yield connect
    for link in links:
        await link.close()


async def wait_armable_and_arm(link: TestGcs, fleet, vehicle: int = 0, mode: int = 4) -> None:
    """GUIDED (by default), wait until the vehicle may arm, arm it."""
    await fleet.wait_armable(timeout_s=10)
    assert await link.set_mode(mode) == 0
    assert await link.command(400, 1) == 0


async def takeoff(link: TestGcs, fleet, alt_m: float, vehicle: int = 0, timeout: float = 20.0) -> None:
    """Arm in GUIDED and climb to alt_m; returns once the vehicle is within 1 m of it."""
    await wait_armable_and_arm(link, fleet, vehicle)
    assert await link.command(22, 0, 0, 0, 0, 0, 0, alt_m) == 0
    await wait_until(lambda: fleet[vehicle].truth.alt_rel_m > alt_m - 1.0, timeout, f"climb to {alt_m} m")


async def wait_until(pred, timeout: float, what: str) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def wait_vehicle_seconds(fleet, seconds: float) -> None:
    """Sleep for `seconds` of vehicle time (robust to a loaded machine slowing the simulation)."""
    import asyncio

    end = fleet.clock() + seconds
    while fleet.clock() < end:
        await asyncio.sleep(0.01)
