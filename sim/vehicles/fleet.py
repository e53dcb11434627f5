"""`SimulatedFleet`: N simulated ArduCopters in the caller's asyncio loop, SITL-style endpoints.

Vehicle i listens on TCP 127.0.0.1:(base_port + 10*i) with sysid i+1 (like SITL's `-I i`) and,
with `udp_gcs`, also sends to a UDP GCS at (host, port + 10*i). One tick task drives every
vehicle: physics at ~50 Hz of vehicle time, telemetry as each link's stream rates ask. Vehicle
time runs `speedup` times faster than wall time; all autopilot timeouts are in vehicle time.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator

from common.airframe import AirframeProfile
from sim import SimError
from sim.vehicles.link import TcpGcsConnection, UdpGcsConnection
from sim.vehicles.params import PARAM_STYLES
from sim.vehicles.vehicle import SimulatedVehicle

log = logging.getLogger(__name__)

PHYSICS_HZ = 50.0
MAX_WALL_TICK_HZ = 200.0  # above this the tick grows in vehicle time instead (high speedups)
DEFAULT_HOME = (32.0, 119.58, 10.0)  # Danyang, as in the recorded traces
PORT_STEP = 10


def PHYSICS_TICK_S(speedup: float) -> float:  # noqa: N802 - a derived constant
    """Wall seconds between ticks: 50 Hz of vehicle time, at most 200 ticks per wall second."""
    return max(1.0 / MAX_WALL_TICK_HZ, 1.0 / (PHYSICS_HZ * speedup))


class VehicleClock:
    """Vehicle seconds since the fleet started: wall time x speedup, monotonic.

    Like SITL under load, vehicle time does not jump ahead when the event loop stalls: between
    two ticks it advances by at most `max_step_s` vehicle seconds, so a busy machine slows the
    simulation instead of making it skip (timeouts and conformance timings stay meaningful).
    """

    def __init__(self, speedup: float, max_step_s: float = 0.25) -> None:
        self.speedup = speedup
        self.max_wall_step_s = max_step_s / speedup
        self._wall = time.monotonic()
        self._vt = 0.0
        self._paused = 0

    def __call__(self) -> float:
        if self._paused:
            return self._vt
        return self._vt + min(time.monotonic() - self._wall, self.max_wall_step_s) * self.speedup

    def advance(self) -> float:
        """Called once per tick: fold the elapsed wall time (capped) into vehicle time."""
        wall = time.monotonic()
        if not self._paused:
            self._vt += min(wall - self._wall, self.max_wall_step_s) * self.speedup
        self._wall = wall
        return self._vt

    @property
    def paused(self) -> bool:
        return self._paused > 0

    def pause(self) -> None:
        """Freeze vehicle time (nests); the vehicles hold still, timeouts stop counting."""
        if not self._paused:
            self.advance()
        self._paused += 1

    def resume(self) -> None:
        if self._paused:
            self._paused -= 1
            if not self._paused:
                self._wall = time.monotonic()  # the paused wall time never happened

    @contextlib.contextmanager
    def frozen(self):
        """`with clock.frozen():` work that should take no vehicle time (a test GCS parsing)."""
        self.pause()
        try:
            yield
        finally:
            self.resume()


class SimulatedFleet:
    """N ArduCopter-compatible vehicles behind MAVLink endpoints, as an async context manager.

    >>> async def demo():                                       # doctest: +SKIP
    ...     async with SimulatedFleet(count=2, fast_start=True) as fleet:
    ...         print(fleet[1].url, fleet[1].sysid)             # tcp:127.0.0.1:5770 2
    """

    def __init__(self, count: int = 1, base_port: int = 5760, home: tuple[float, float, float] = DEFAULT_HOME,
                 speedup: float = 1.0, fast_start: bool = False, param_style: str = "4.7", seed: int = 0,
                 udp_gcs: tuple[str, int] | str | None = None, host: str = "127.0.0.1",
                 home_spacing_m: float = 0.0, battery_mah: float | None = None,
                 params: dict[str, float] | None = None, airframe: AirframeProfile | None = None) -> None:
        if count < 1:
            raise SimError(f"a fleet needs at least 1 vehicle, got count={count}")
        if not 0.05 <= speedup <= 100:
            raise SimError(f"speedup must be within 0.05..100, got {speedup}")
        if param_style not in PARAM_STYLES:
            raise SimError(f"param_style must be one of {', '.join(PARAM_STYLES)}, got {param_style!r}")
        if not (1 <= base_port and base_port + PORT_STEP * (count - 1) <= 65535):
            raise SimError(f"ports {base_port}..{base_port + PORT_STEP * (count - 1)} are not valid TCP ports")
        lat, lon, alt = home
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise SimError(f"home {home} is not a valid lat, lon, alt")
        self.count = count
        self.base_port = base_port
        self.host = host
        self.speedup = float(speedup)
        self.udp_gcs = _parse_udp(udp_gcs)
        self.clock = VehicleClock(self.speedup)
        from common.geo import offset

        self.vehicles: list[SimulatedVehicle] = []
        for i in range(count):
            # optional spacing so a fleet does not start stacked on one point (east of home)
            h_lat, h_lon = offset(lat, lon, 0.0, home_spacing_m * i) if home_spacing_m else (lat, lon)
            v = SimulatedVehicle(i, (h_lat, h_lon, alt), self.clock, base_port + PORT_STEP * i,
                                 param_style=param_style, fast_start=fast_start, seed=seed)
            v.params.set("SIM_SPEEDUP", self.speedup)
            if battery_mah:  # None keeps SITL's 3300 mAh pack (about 6.5 min at the quad's 30 A)
                v.params.set("BATT_CAPACITY", battery_mah)
                v.battery.capacity_mah = float(battery_mah)
            if airframe is not None:  # None draws as SITL's quad (the default profile's currents)
                v.battery.use_airframe(airframe)
            # parameters as stored in the vehicle's EEPROM before it boots (4.7+ names, SI units),
            # so boot-time ones such as OA_TYPE take effect from the start
            for name, value in (params or {}).items():
                v.params.set(name, value)
            v.load_boot_params()
            self.vehicles.append(v)
        self._servers: list[asyncio.AbstractServer] = []
        self._udp: list[UdpGcsConnection] = []
        self._task: asyncio.Task | None = None
        self.tick_count = 0
        self.tick_overruns = 0

    @classmethod
    def from_config(cls, cfg) -> SimulatedFleet:
        """A fleet from a `sim.vehicles.config.FleetConfig`, with its start-up faults applied."""
        fleet = cls(count=cfg.count, base_port=cfg.base_port, home=(cfg.home.lat, cfg.home.lon, cfg.home.alt_m),
                    speedup=cfg.speedup, fast_start=cfg.fast_start, param_style=cfg.param_style, seed=cfg.seed,
                    udp_gcs=cfg.udp_gcs, home_spacing_m=cfg.home_spacing_m, battery_mah=cfg.battery_mah,
                    params=cfg.params, airframe=cfg.airframe)
        f = cfg.faults
        for v in fleet:
            v.faults.set_packet_loss(f.packet_loss_pct)
            v.faults.set_latency(f.latency_ms)
            if f.wind_speed_m_s:
                v.faults.set_wind(f.wind_speed_m_s, f.wind_from_deg)
            if f.battery_pct is not None:
                v.faults.drain_battery_to(f.battery_pct)
        return fleet

    # ---- container
    def __len__(self) -> int:
        return len(self.vehicles)

    def __getitem__(self, i: int) -> SimulatedVehicle:
        return self.vehicles[i]

    def __iter__(self) -> Iterator[SimulatedVehicle]:
        return iter(self.vehicles)

    @property
    def urls(self) -> list[str]:
        return [v.url for v in self.vehicles]

    # ---- lifecycle
    async def start(self) -> SimulatedFleet:
        loop = asyncio.get_running_loop()
        try:
            for v in self.vehicles:
                server = await loop.create_server(lambda v=v: TcpGcsConnection(v), self.host, v.port,
                                                  reuse_address=True)
                self._servers.append(server)
                if self.udp_gcs is not None:
                    host, port = self.udp_gcs
                    remote = (host, port + PORT_STEP * v.index)
                    conn = UdpGcsConnection(v, remote)
                    await loop.create_datagram_endpoint(lambda c=conn: c, local_addr=(self.host, 0))
                    v.add_connection(conn)
                    self._udp.append(conn)
        except OSError as exc:
            await self.stop()
            raise SimError(f"cannot listen on {self.host}:{v.port} for vehicle {v.sysid}: {exc}") from exc
        # a late tick may fold in at most ~2 ticks of vehicle time (0.25 s at low speedups)
        self.clock = VehicleClock(self.speedup, max_step_s=max(0.25, 2 * PHYSICS_TICK_S(self.speedup) * self.speedup))
        for v in self.vehicles:
            v.clock = self.clock
        self._task = asyncio.create_task(self._run(), name="sim-fleet-tick")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for v in self.vehicles:
            for c in list(v.connections):
                c.close()
            v.connections.clear()
        for s in self._servers:
            s.close()
        for s in self._servers:
            try:
                await asyncio.wait_for(s.wait_closed(), 2.0)
            except (asyncio.TimeoutError, Exception):  # closing is best effort
                pass
        self._servers.clear()
        self._udp.clear()

    async def __aenter__(self) -> SimulatedFleet:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def _run(self) -> None:
        """The one tick task: every vehicle advances to the current vehicle time each tick."""
        wall_period = PHYSICS_TICK_S(self.speedup)
        next_wall = time.monotonic()
        while True:
            now = self.clock.advance()
            for v in self.vehicles:
                try:
                    v.tick(now)
                except Exception:  # one broken vehicle must not stop the others
                    log.exception("vehicle %d tick failed", v.sysid)
            self.tick_count += 1
            next_wall += wall_period
            delay = next_wall - time.monotonic()
            if delay < 0:
                self.tick_overruns += 1
                next_wall = time.monotonic()
                delay = 0
            await asyncio.sleep(delay)

    def pause(self) -> None:
        """Freeze the whole fleet in time (a trainer's pause); links stay up, nothing moves."""
        self.clock.pause()

    def resume(self) -> None:
        self.clock.resume()

    async def wait_armable(self, timeout_s: float = 60.0) -> None:
        """Block until every vehicle could arm (EKF using GPS); SimError after `timeout_s` wall s."""
        deadline = time.monotonic() + timeout_s
        while not all(v.position_ok for v in self.vehicles):
            if time.monotonic() > deadline:
                raise SimError(f"vehicles not armable after {timeout_s} s")
            await asyncio.sleep(0.02)


def _parse_udp(udp: tuple[str, int] | str | None) -> tuple[str, int] | None:
    if udp is None:
        return None
    if isinstance(udp, str):
        host, _, port = udp.rpartition(":")
        if not host or not port.isdigit():
            raise SimError(f"UDP GCS endpoint must be HOST:PORT, got {udp!r}")
        return host, int(port)
    return udp[0], int(udp[1])
