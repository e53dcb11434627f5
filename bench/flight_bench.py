"""Flight controller benchmark: prints its figures.

1. 24 simulated vehicles flying at 1x from one `Fleet`: the controller's CPU use, measured in
   this process only (the simulator runs in a child process), as % of one core.
   Target: <= 25 %.
2. A 500-item verified upload (upload + read back + compare) to the simulator on loopback.
   Target: <= 2 s.
3. The way home round no-fly zones (`NoFlyZones.route`, what the energy watch asks every second
   per airborne drone and a controller-flown return flies): graph build and per-route times for
   a 3 x 3 km sortie fence with 12 zones.

    .venv/bin/python bench/flight_bench.py [--vehicles 24] [--window 60]
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.geo import offset  # noqa: E402
from common.values import MissionItem  # noqa: E402
from flight import Fleet, FlightConfig, Vehicle  # noqa: E402
from tests.fixtures.ports import free_port_block  # noqa: E402
from tests.flight.procedures import get_sortie  # noqa: E402


def _run_sim(count: int, base_port: int, ready, stop) -> None:
    from sim.vehicles import SimulatedFleet

    async def main() -> None:
        async with SimulatedFleet(count=count, base_port=base_port, speedup=1.0, fast_start=True):
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.2)
    asyncio.run(main())


def start_sim(count: int) -> tuple[mp.Process, int, object]:
    base = free_port_block(count, 10)
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_run_sim, args=(count, base, ready, stop), daemon=True)
    proc.start()
    if not ready.wait(60):
        proc.kill()
        raise SystemExit("simulator did not start within 60 s")
    return proc, base, stop


async def bench_fleet(count: int, window_s: float) -> None:
    proc, base, stop = start_sim(count)
    try:
        urls = [f"tcp:127.0.0.1:{base + 10 * i}" for i in range(count)]
        fleet = Fleet.from_urls(urls, config=FlightConfig())
        t0 = time.monotonic()
        await fleet.connect()
        print(f"fleet: {count} vehicles connected in {time.monotonic() - t0:.2f} s", flush=True)
        await asyncio.gather(*(v.wait_until(lambda s: s.pose is not None, 30, what="position") for v in fleet))
        homes = [(v.state.pose.lat, v.state.pose.lon) for v in fleet]
        sorties = [[get_sortie(h, [(400, 0), (400, 400), (0, 400), (-400, 400)], alt_m=30, name=f"s{i}")]
                   for i, h in enumerate(homes)]
        fly = asyncio.create_task(fleet.fly(sorties))
        await asyncio.gather(*(v.wait_until(lambda s: s.mode == "AUTO", 120, what="AUTO") for v in fleet))
        print(f"fleet: all {count} in AUTO after {time.monotonic() - t0:.1f} s; measuring {window_s:.0f} s",
              flush=True)
        msgs0 = sum(v.messages_in for v in fleet)
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(window_s)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        msgs = sum(v.messages_in for v in fleet) - msgs0
        airborne = sum(1 for v in fleet if v.state.airborne)
        print(f"fleet: controller CPU {100 * cpu / wall:.1f} % of one core over {wall:.1f} s "
              f"({count} vehicles, {airborne} airborne, {msgs / wall:.0f} msg/s in) [target <= 25 %]", flush=True)
        fly.cancel()
        await fleet.rtl_all()
        await fleet.close()
    finally:
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.kill()


async def bench_upload(n_items: int) -> None:
    proc, base, stop = start_sim(1)
    try:
        async with Vehicle(f"tcp:127.0.0.1:{base}", drone_id="bench") as v:
            # a home means an EKF origin: before it ArduCopter answers uploads NO_SPACE (not timed here)
            await v.wait_until(lambda s: s.pose is not None and s.home is not None, 60, what="home position")
            home = (v.state.pose.lat, v.state.pose.lon)
            items = [MissionItem(16, *home, 0.0, frame=0), MissionItem(22, alt_m=30)]
            items += [MissionItem(16, *offset(*home, 10.0 * (i // 25), 10.0 * (i % 25)), 30.0)
                      for i in range(n_items - 3)]
            items.append(MissionItem(20))
            t0 = time.monotonic()
            await v.mission.upload_verified(items)
            dt = time.monotonic() - t0
            print(f"upload: {len(items)}-item verified upload (upload + read back + compare) in {dt:.2f} s "
                  f"[target <= 2 s]", flush=True)
    finally:
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.kill()


def bench_routes(zone_count: int = 12, routes: int = 200) -> None:
    import random

    from common.values import FenceZone
    from flight.avoidance import NoFlyZones, _graph

    rng = random.Random(7)
    home = (32.0, 119.58)

    def square(cn: float, ce: float, hn: float, he: float) -> tuple:
        return tuple(offset(*home, cn + dn, ce + de) for dn, de in [(-hn, -he), (hn, -he), (hn, he), (-hn, he)])
    boxes: list[tuple[float, float, float, float]] = []
    while len(boxes) < zone_count:
        b = (rng.uniform(-1200, 1200), rng.uniform(-1200, 1200), rng.uniform(30, 125), rng.uniform(30, 125))
        if all(abs(b[0] - o[0]) > b[2] + o[2] + 40 or abs(b[1] - o[1]) > b[3] + o[3] + 40 for o in boxes):
            boxes.append(b)
    fence = (FenceZone(True, square(0, 0, 1500, 1500)), *(FenceZone(False, square(*b)) for b in boxes))
    nf = NoFlyZones.from_fence(fence, margin_m=10.0)
    t0 = time.perf_counter()
    _graph(nf)
    build_ms = (time.perf_counter() - t0) * 1000
    times, detours = [], 0
    for _ in range(routes):
        start = offset(*home, rng.uniform(-1400, 1400), rng.uniform(-1400, 1400))
        t0 = time.perf_counter()
        try:
            r = nf.route(start, home)
            detours += len(r) > 1
        except Exception:  # a start inside a zone's margin: no route, as in flight
            pass
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    print(f"routes home: {zone_count} no-fly zones, graph built in {build_ms:.1f} ms; {routes} routes "
          f"({detours} round a zone): median {times[len(times) // 2]:.2f} ms, max {times[-1]:.2f} ms "
          f"(24 drones asking once a second: {24 * sum(times) / len(times) / 10:.1f} % of one core)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vehicles", type=int, default=24)
    ap.add_argument("--window", type=float, default=60.0, help="CPU measuring window in s (default 60)")
    ap.add_argument("--items", type=int, default=500)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    bench_routes()
    asyncio.run(bench_upload(args.items))
    asyncio.run(bench_fleet(args.vehicles, args.window))


if __name__ == "__main__":
    main()
