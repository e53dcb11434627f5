"""Many vehicles on one event loop: connect, command and watch them together."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence

from common.values import Mission
from flight.config import FlightConfig
from flight.errors import FlightError
from flight.link import LinkAddress, parse_url
from flight.sortie import Progress, SortieReport, fly_sortie
from flight.vehicle import EventStream, Vehicle

log = logging.getLogger(__name__)


def fleet_urls(base_url: str, count: int, step: int = 10) -> list[LinkAddress]:
    """Vehicle i at base port + step*i (SITL's -I i convention).

    >>> [str(a) for a in fleet_urls("tcp:127.0.0.1:5760", 3)]
    ['tcp:127.0.0.1:5760', 'tcp:127.0.0.1:5770', 'tcp:127.0.0.1:5780']
    """
    base = parse_url(base_url)
    return [base.with_port_offset(step * i) for i in range(count)]


class Fleet:
    """`async with Fleet.from_base("tcp:127.0.0.1:5760", 6) as fleet:` ... `fleet[0].action...`"""

    def __init__(self, vehicles: Sequence[Vehicle]) -> None:
        self.vehicles = list(vehicles)

    @classmethod
    def from_urls(cls, urls: Sequence[str | LinkAddress], *, config: FlightConfig | None = None,
                  drone_ids: Sequence[str] | None = None) -> "Fleet":
        ids = list(drone_ids) if drone_ids else [f"drone-{i + 1}" for i in range(len(urls))]
        return cls([Vehicle(u, drone_id=d, config=config) for u, d in zip(urls, ids, strict=True)])

    @classmethod
    def from_base(cls, base_url: str, count: int, **kw) -> "Fleet":
        return cls.from_urls(fleet_urls(base_url, count), **kw)

    def __len__(self) -> int:
        return len(self.vehicles)

    def __getitem__(self, i: int) -> Vehicle:
        return self.vehicles[i]

    def __iter__(self) -> Iterator[Vehicle]:
        return iter(self.vehicles)

    async def __aenter__(self) -> "Fleet":
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def connect(self, timeout_s: float | None = None) -> None:
        """Connect all; if any fails, the others are closed again and the first error is raised."""
        results = await asyncio.gather(*(v.connect(timeout_s) for v in self.vehicles), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.close()
            raise errors[0]

    async def close(self) -> None:
        await asyncio.gather(*(v.close() for v in self.vehicles), return_exceptions=True)

    def events(self) -> EventStream:
        """All vehicles' events merged, in arrival order."""
        return EventStream(*(v.event_queues for v in self.vehicles))

    async def _all(self, what: str, fn) -> dict[str, FlightError]:
        results = await asyncio.gather(*(fn(v) for v in self.vehicles), return_exceptions=True)
        failed: dict[str, FlightError] = {}
        for v, r in zip(self.vehicles, results):
            if isinstance(r, FlightError):
                failed[v.drone_id] = r
                log.error("%s failed: %s", what, r)
            elif isinstance(r, BaseException):
                raise r
        return failed

    async def start_all(self) -> dict[str, FlightError]:
        """AUTO on every armed vehicle; returns the ones that refused, by drone id."""
        return await self._all("start", lambda v: v.action.start_mission())

    async def hold_all(self) -> dict[str, FlightError]:
        return await self._all("hold", lambda v: v.action.hold())

    async def rtl_all(self) -> dict[str, FlightError]:
        return await self._all("RTL", lambda v: v.action.return_home())

    async def fly(self, sorties: Sequence[Sequence[Mission]], *, progress: Progress | None = None,
                  verify_only: bool = False) -> list[list[SortieReport | FlightError]]:
        """Vehicle i flies sorties[i] in order; a vehicle stops at its first failed sortie."""
        async def one(v: Vehicle, plan: Sequence[Mission]) -> list[SortieReport | FlightError]:
            out: list[SortieReport | FlightError] = []
            for mission in plan:
                try:
                    out.append(await fly_sortie(v, mission, progress=progress, verify_only=verify_only))
                except FlightError as exc:
                    out.append(exc)
                    break
            return out
        return list(await asyncio.gather(*(one(v, p) for v, p in zip(self.vehicles, sorties))))
