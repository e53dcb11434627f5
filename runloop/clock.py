"""Scenario time: the simulated vehicles' own clock when the built-in simulator runs, otherwise
wall time x speedup since the start. Every stage stamps what it records with `clock()`."""
from __future__ import annotations

import time
from collections.abc import Callable


class ScenarioClock:
    def __init__(self, speedup: float, source: Callable[[], float] | None = None):
        self.speedup = speedup
        self._source = source
        self._t0_wall = time.monotonic()
        self._t0_src = source() if source else 0.0

    def __call__(self) -> float:
        if self._source is not None:
            return self._source() - self._t0_src
        return (time.monotonic() - self._t0_wall) * self.speedup

    def wall_s(self, scenario_s: float) -> float:
        """Wall seconds that `scenario_s` of scenario time take (for sleeps)."""
        return scenario_s / self.speedup

    async def sleep_until(self, t_s: float, stop=None, poll_wall_s: float = 0.05) -> bool:
        """Wait until scenario time t_s; False if `stop` was set first."""
        import asyncio

        while self() < t_s:
            if stop is not None and stop.is_set():
                return False
            await asyncio.sleep(min(max(poll_wall_s, 0.005), max(0.005, self.wall_s(t_s - self()))))
        return True
