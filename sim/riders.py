"""Simulated motorcycle units: they speak the real MQTT API through `dispatch.rider.RiderClient`.

Each unit publishes its location at `location_hz` (1 Hz by default), accepts an alert after
`accept_delay_s` (or declines with probability `decline_rate`), rides to the incident at
`speed_m_s` along a straight line or a simple street grid (north-south leg, then east-west),
reports `arrived`, stays `on_scene_s`, reports `resolved` and becomes available again.

    fleet = RiderFleet.around(broker, (32.0, 119.58), count=8, radius_m=2000, state_dir=tmp)
    await fleet.run(stop)            # until stop is set; fleet.stats counts what happened

Against a `patrol broker-config` broker every unit logs in as itself (one login per client): pass
`credentials` (unit id -> password, e.g. the broker's credentials.yaml) and each unit's BrokerConfig
gets its own user name and password.
"""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from common.geo import bearing_deg, destination, distance_m
from dispatch.config import BrokerConfig
from dispatch.rider import RiderAlertState, RiderClient, RiderStore
from dispatch.schemas import AlertCancelMessage, AlertMessage

log = logging.getLogger(__name__)


class RiderSimConfig(BaseModel):
    """How simulated units behave."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    speed_m_s: float = Field(11.0, gt=0, le=150, title="riding speed (11 m/s ≈ 40 km/h in town)")
    accept_delay_s: float = Field(3.0, ge=0, title="time to look at the alert and answer")
    decline_rate: float = Field(0.0, ge=0, le=1, title="probability of declining an alert")
    on_scene_s: float = Field(30.0, ge=0, title="time on scene before reporting resolved")
    location_hz: float = Field(1.0, gt=0, le=20)
    route: Literal["straight", "grid"] = "straight"
    arrive_within_m: float = Field(10.0, gt=0, title="report arrived this close to the incident")
    topic_prefix: str = "patrol"


@dataclass
class RiderStats:
    alerts: int = 0
    accepted: int = 0
    declined: int = 0
    arrived: int = 0
    resolved: int = 0
    cancelled: int = 0
    resolved_incidents: list[str] = field(default_factory=list)


class SimulatedRider:
    """One unit: position, a job (the accepted alert) and the RiderClient that carries it."""

    def __init__(self, broker: BrokerConfig, unit_id: str, start: tuple[float, float], config: RiderSimConfig,
                 state_dir: Path, rng: random.Random, stats: RiderStats):
        self.unit_id = unit_id
        self.lat, self.lon = start
        self.config = config
        self.rng = rng
        self.stats = stats
        self.status = "available"  # what the unit tells the controller: available | busy | off
        self.on_scene = False  # busy and at the incident (no longer riding)
        self.job: AlertMessage | None = None
        self._finishing: asyncio.Task | None = None
        self._inbox: asyncio.Queue[AlertMessage] = asyncio.Queue()
        self.store = RiderStore(Path(state_dir) / f"{unit_id}.sqlite")
        self.client = RiderClient(broker, unit_id, self.store, topic_prefix=config.topic_prefix,
                                  on_alert=self._on_alert, on_cancel=self._on_cancel)

    async def _on_alert(self, alert: AlertMessage) -> None:
        self.stats.alerts += 1
        self._inbox.put_nowait(alert)

    async def _on_cancel(self, cancel: AlertCancelMessage) -> None:
        if self.job and self.job.alert_id == cancel.alert_id:
            log.info("%s stood down from %s: %s", self.unit_id, cancel.alert_id, cancel.reason)
            self.stats.cancelled += 1
            self.job = None
            self.status, self.on_scene = "available", False

    def _waypoint(self, lat: float, lon: float) -> tuple[float, float]:
        """Where to head next: the target, or on the street grid first the corner of an L."""
        if self.config.route == "grid" and distance_m(self.lat, self.lon, lat, self.lon) > 1.0:
            return lat, self.lon
        return lat, lon

    def step(self, dt_s: float) -> None:
        """Move toward the job's incident for dt_s seconds."""
        if self.job is None or self.status != "busy" or self.on_scene:
            return
        budget_m = self.config.speed_m_s * dt_s
        target = (self.job.incident.lat, self.job.incident.lon)
        for _ in range(2):  # at most one corner per step
            wp = self._waypoint(*target)
            d = distance_m(self.lat, self.lon, *wp)
            if d <= budget_m:
                self.lat, self.lon = wp
                budget_m -= d
                if wp == target:
                    return
            else:
                self.lat, self.lon = destination(self.lat, self.lon, bearing_deg(self.lat, self.lon, *wp), budget_m)
                return

    def heading_deg(self) -> float | None:
        if self.job is None:
            return None
        return bearing_deg(self.lat, self.lon, *self._waypoint(self.job.incident.lat, self.job.incident.lon))

    async def _answer_loop(self) -> None:
        while True:
            alert = await self._inbox.get()
            await asyncio.sleep(self.config.accept_delay_s)
            if self.store.state(alert.alert_id) == RiderAlertState.CANCELLED:
                continue
            if self.job is not None or self.rng.random() < self.config.decline_rate:
                await self.client.ack(alert.alert_id, "decline")
                self.stats.declined += 1
                continue
            await self.client.ack(alert.alert_id, "accept")
            self.stats.accepted += 1
            self.job, self.status = alert, "busy"

    async def _job_loop(self) -> None:
        dt_s = 1.0 / self.config.location_hz
        while True:
            self.step(dt_s)
            riding = self.status == "busy" and not self.on_scene
            speed = self.config.speed_m_s if riding else 0.0
            self.client.publish_location(self.lat, self.lon, status=self.status, speed_m_s=speed,
                                         heading_deg=self.heading_deg(), battery_pct=80)
            job = self.job
            if job and riding and distance_m(self.lat, self.lon, job.incident.lat,
                                             job.incident.lon) <= self.config.arrive_within_m:
                await self.client.ack(job.alert_id, "arrived")
                self.stats.arrived += 1
                self.on_scene = True  # still busy to the controller until resolved
                self._finishing = asyncio.get_running_loop().create_task(self._finish(job))
            await asyncio.sleep(dt_s)

    async def _finish(self, job: AlertMessage) -> None:
        await asyncio.sleep(self.config.on_scene_s)
        if self.job is not job:
            return
        await self.client.ack(job.alert_id, "resolved")
        self.stats.resolved += 1
        self.stats.resolved_incidents.append(job.incident.id)
        self.job, self.status, self.on_scene = None, "available", False

    async def run(self, stop: asyncio.Event) -> None:
        """Until stop is set. A unit whose loop fails raises here: a unit that silently stops
        reporting would look to the controller like a rider who went quiet."""
        await self.client.start()
        tasks = [asyncio.create_task(self._answer_loop(), name=f"{self.unit_id}-answers"),
                 asyncio.create_task(self._job_loop(), name=f"{self.unit_id}-job")]
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            for t in tasks:
                t.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            if self._finishing:
                self._finishing.cancel()
            await self.client.stop()
            self.store.close()
        for result in results:
            if isinstance(result, Exception):
                raise RuntimeError(f"simulated unit {self.unit_id} failed: {result!r}") from result


def unit_login(broker: BrokerConfig, unit_id: str, credentials: Mapping[str, str] | None) -> BrokerConfig:
    """The unit's own login (user name = unit id) when credentials are given, else broker as is."""
    if credentials is None:
        return broker
    if unit_id not in credentials:
        from sim import SimError

        raise SimError(f"no password for unit {unit_id} in the credentials (units log in as themselves)")
    return broker.model_copy(update={"username": unit_id, "password": SecretStr(str(credentials[unit_id]))})


class RiderFleet:
    """M simulated units sharing one stats record."""

    def __init__(self, broker: BrokerConfig, units: Sequence[tuple[str, float, float]], state_dir: Path,
                 config: RiderSimConfig | None = None, seed: int = 0, credentials: Mapping[str, str] | None = None):
        self.config = config or RiderSimConfig()
        self.stats = RiderStats()
        rng = random.Random(seed)
        self.riders = [SimulatedRider(unit_login(broker, uid, credentials), uid, (lat, lon), self.config, state_dir,
                                      random.Random(rng.random()), self.stats) for uid, lat, lon in units]

    @classmethod
    def around(cls, broker: BrokerConfig, center: tuple[float, float], count: int, radius_m: float, state_dir: Path,
               config: RiderSimConfig | None = None, seed: int = 0, prefix: str = "M",
               credentials: Mapping[str, str] | None = None) -> "RiderFleet":
        """`count` units spread evenly on a ring of radius_m around center (deterministic)."""
        units = []
        for i in range(count):
            lat, lon = destination(center[0], center[1], 360.0 * i / max(count, 1),
                                   radius_m * (0.5 + 0.5 * ((i * 7) % 5) / 4))
            units.append((f"{prefix}{i + 1:02d}", lat, lon))
        return cls(broker, units, state_dir, config, seed, credentials)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(r.run(stop) for r in self.riders))


# ---------------------------------------------------------------------- `patrol sim riders`
def register_sim(subparsers) -> None:
    """Adds `patrol sim riders` (sim/cli.py picks this up through its extra-module hook)."""
    p = subparsers.add_parser("riders", help="M simulated motorcycle units on the MQTT API until Ctrl-C")
    p.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="broker URL (default mqtt://127.0.0.1:1883)")
    p.add_argument("--count", type=int, default=6, help="number of units (default 6)")
    p.add_argument("--center", default="32.0,119.58", metavar="LAT,LON", help="centre of the ring of units")
    p.add_argument("--radius-m", type=float, default=2000.0, help="units start up to this far out (default 2000)")
    p.add_argument("--speed", type=float, default=11.0, help="riding speed m/s (default 11)")
    p.add_argument("--accept-delay", type=float, default=3.0, help="seconds before answering (default 3)")
    p.add_argument("--decline-rate", type=float, default=0.0, help="probability of declining (default 0)")
    p.add_argument("--on-scene", type=float, default=30.0, help="seconds on scene before resolved (default 30)")
    p.add_argument("--route", choices=("straight", "grid"), default="straight")
    p.add_argument("--state-dir", default=None, help="where the units keep their stores (default: temp dir)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--credentials", default=None, metavar="FILE",
                   help="credentials.yaml from `patrol broker-config`: each unit logs in as itself")
    p.add_argument("--ca-file", default=None, help="CA certificate for an mqtts:// broker")
    p.set_defaults(func=run_riders_cli)


def run_riders_cli(args) -> int:
    import signal
    import tempfile

    from pydantic import ValidationError

    from sim import SimError

    try:
        lat, lon = (float(v) for v in args.center.split(","))
        config = RiderSimConfig(speed_m_s=args.speed, accept_delay_s=args.accept_delay,
                                decline_rate=args.decline_rate, on_scene_s=args.on_scene, route=args.route)
        broker = BrokerConfig(url=args.broker, ca_file=args.ca_file)
        if args.count < 1:
            raise ValueError("--count must be at least 1")
        credentials = None
        if args.credentials:
            import yaml

            try:
                credentials = yaml.safe_load(Path(args.credentials).read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise ValueError(f"cannot read --credentials {args.credentials}: {exc}") from exc
            if not isinstance(credentials, dict):
                raise ValueError(f"--credentials {args.credentials}: expected user: password lines")
    except (ValueError, ValidationError) as exc:
        print(f"patrol sim riders: {SimError(str(exc))}")
        return 2

    async def main(state_dir: Path) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        fleet = RiderFleet.around(broker, (lat, lon), args.count, args.radius_m, state_dir, config, seed=args.seed,
                                  credentials=credentials)
        for r in fleet.riders:
            print(f"unit {r.unit_id} at {r.lat:.5f},{r.lon:.5f}", flush=True)
        runner = asyncio.create_task(fleet.run(stop))
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 10)
            except TimeoutError:
                s = fleet.stats
                print(f"alerts {s.alerts}  accepted {s.accepted}  declined {s.declined}  arrived {s.arrived}  "
                      f"resolved {s.resolved}", flush=True)
        await runner

    try:
        if args.state_dir:
            asyncio.run(main(Path(args.state_dir)))
        else:
            with tempfile.TemporaryDirectory(prefix="sim-riders-") as tmp:
                asyncio.run(main(Path(tmp)))
    except SimError as exc:
        print(f"patrol sim riders: {exc}")
        return 2
    return 0
