"""Benchmark: 24 simulated ArduCopters flying missions at 1x in one process.

The simulator runs in this process; a separate GCS process connects to every vehicle, asks for
all streams at 4 Hz (what Mission Planner / MAVProxy ask), uploads a patrol mission, arms,
takes off and flies AUTO, then counts what arrives for a measurement window. Printed: the
simulator process's CPU (time.process_time / wall) over the window, tick overruns, and the
achieved telemetry rates per message type (mean and worst vehicle). A PNG of the rates is
written too.

    .venv/bin/python bench/sim_bench.py [--count 24] [--window 30] [--rate 4] [--out bench-out]

Target (issue 3): simulator CPU <= 50 % of one core with the telemetry rates held.

    .venv/bin/python bench/sim_bench.py --oa [--zones 12]

Object avoidance instead: builds the vehicle's Dijkstra planner for a 3 x 3 km sortie fence with
`--zones` no-fly polygons (what ArduCopter does when the fence changes) and plans 200 legs across
it (what every AUTO leg, GUIDED target and RTL costs, re-planned every 0.5 s while on a detour);
prints the times and draws a few paths to bench-out/sim_oa_bench.png.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEY_TYPES = ("GLOBAL_POSITION_INT", "ATTITUDE", "VFR_HUD", "SYS_STATUS", "BATTERY_STATUS", "GPS_RAW_INT",
             "MISSION_CURRENT", "EKF_STATUS_REPORT", "SYSTEM_TIME", "HEARTBEAT")


# ---------------------------------------------------------------- GCS side (child process)
async def gcs_main(base_port: int, count: int, rate_hz: int, window_s: float) -> None:
    from pymavlink.dialects.v20 import ardupilotmega as mavlink

    from common.geo import offset

    class Link(asyncio.Protocol):
        def __init__(self, sysid: int) -> None:
            self.sysid = sysid
            self.parser = mavlink.MAVLink(None)
            self.parser.robust_parsing = True
            self.mav = mavlink.MAVLink(self, srcSystem=255, srcComponent=190)
            self.counts: dict[str, int] = {}
            self.counting = False
            self.waiters: list[tuple] = []
            self.transport = None
            self.alt_m = 0.0

        def write(self, data: bytes) -> None:
            self.transport.write(data)

        def connection_made(self, transport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            for m in self.parser.parse_buffer(data) or []:
                t = m.get_type()
                if self.counting:
                    self.counts[t] = self.counts.get(t, 0) + 1
                if t == "GLOBAL_POSITION_INT":
                    self.alt_m = m.relative_alt / 1000
                for w in list(self.waiters):
                    pred, fut = w
                    if not fut.done() and pred(m):
                        fut.set_result(m)
                        self.waiters.remove(w)

        async def wait(self, pred, timeout: float = 10.0):
            fut = asyncio.get_running_loop().create_future()
            self.waiters.append((pred, fut))
            return await asyncio.wait_for(fut, timeout)

        async def command(self, cmd: int, *p: float) -> int:
            p = list(p) + [0.0] * (7 - len(p))
            waiter = asyncio.ensure_future(self.wait(lambda m: m.get_type() == "COMMAND_ACK" and m.command == cmd))
            self.mav.command_long_send(self.sysid, 1, cmd, 0, *p)
            return (await waiter).result

        async def upload(self, items: list[tuple]) -> int:
            waiter = None
            self.mav.mission_count_send(self.sysid, 1, len(items), 0)
            while True:
                m = await self.wait(lambda m: m.get_type() in ("MISSION_REQUEST", "MISSION_ACK"))
                if m.get_type() == "MISSION_ACK":
                    return m.type
                cmd, lat, lon, alt, p1, p2 = items[m.seq]
                self.mav.mission_item_int_send(self.sysid, 1, m.seq, 6, cmd, 0, 1, p1, p2, 0, 0,
                                               int(lat * 1e7), int(lon * 1e7), alt, 0)
            return waiter

    loop = asyncio.get_running_loop()
    links = []
    for i in range(count):
        link = Link(i + 1)
        await loop.create_connection(lambda link=link: link, "127.0.0.1", base_port + 10 * i)
        links.append(link)

    async def beat() -> None:
        while True:
            for link in links:
                link.mav.heartbeat_send(6, 8, 0, 0, 0)
            await asyncio.sleep(1.0)

    beat_task = asyncio.create_task(beat())

    async def fly(link: Link, i: int) -> None:
        link.mav.request_data_stream_send(link.sysid, 1, 0, rate_hz, 1)
        lat0, lon0 = offset(32.0, 119.58, 0.0, 50.0 * i)
        box = [offset(lat0, lon0, dn, de) for dn, de in [(300, 0), (300, 200), (0, 200), (0, 0)]]
        items = [(16, lat0, lon0, 0, 0, 0), (22, 0, 0, 30, 0, 0)]
        items += [(16, a, b, 30, 0, 0) for a, b in box]
        items += [(177, 0, 0, 0, 2, -1)]  # DO_JUMP back to item 2 forever: they keep flying
        assert await link.upload(items) == 0
        while await link.command(400, 1) != 0:
            await asyncio.sleep(0.5)
        assert await link.command(176, 1, 3) == 0  # AUTO: the mission's takeoff lifts it

    await asyncio.gather(*(fly(link, i) for i, link in enumerate(links)))
    while min(link.alt_m for link in links) < 25:
        await asyncio.sleep(0.5)
    await asyncio.sleep(5)  # settle into cruise
    print("WINDOW START", flush=True)
    for link in links:
        link.counting = True
    t0 = time.monotonic()
    await asyncio.sleep(window_s)
    wall = time.monotonic() - t0
    for link in links:
        link.counting = False
    print("WINDOW END " + json.dumps({"wall_s": wall, "counts": [link.counts for link in links]}), flush=True)
    beat_task.cancel()


# ---------------------------------------------------------------- simulator side
async def sim_main(args: argparse.Namespace) -> int:
    from sim.vehicles import SimulatedFleet
    from tests.fixtures.ports import free_port_block

    base = args.base_port or free_port_block(args.count, 10)
    fleet = SimulatedFleet(count=args.count, base_port=base, speedup=1.0, fast_start=True, home_spacing_m=50.0)
    async with fleet:
        print(f"{args.count} vehicles on 127.0.0.1:{base}..{base + 10 * (args.count - 1)}; GCS process starting",
              flush=True)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--gcs", "--base-port", str(base), "--count", str(args.count),
            "--rate", str(args.rate), "--window", str(args.window), stdout=asyncio.subprocess.PIPE)
        cpu0 = wall0 = ticks0 = over0 = None
        result = None
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), 300)
            if not line:
                break
            text = line.decode().strip()
            if text == "WINDOW START":
                cpu0, wall0 = time.process_time(), time.monotonic()
                ticks0, over0 = fleet.tick_count, fleet.tick_overruns
                print(f"all {args.count} flying AUTO; measuring {args.window:g} s ...", flush=True)
            elif text.startswith("WINDOW END "):
                cpu1, wall1 = time.process_time(), time.monotonic()
                result = json.loads(text[len("WINDOW END "):])
                result["cpu_s"] = cpu1 - cpu0
                result["sim_wall_s"] = wall1 - wall0
                result["ticks"] = fleet.tick_count - ticks0
                result["overruns"] = fleet.tick_overruns - over0
        await proc.wait()
    if result is None:
        print("GCS process failed before the measurement window", file=sys.stderr)
        return 1
    report(result, args)
    return 0


def report(r: dict, args: argparse.Namespace) -> None:
    cpu_pct = 100.0 * r["cpu_s"] / r["sim_wall_s"]
    wall = r["wall_s"]
    print(f"\nsimulator CPU: {r['cpu_s']:.2f} s over {r['sim_wall_s']:.2f} s wall = {cpu_pct:.1f} % of one core "
          f"(target <= 50 %); {r['ticks']} ticks ({r['ticks'] / r['sim_wall_s']:.1f} Hz), {r['overruns']} overruns")
    print(f"telemetry per vehicle, requested {args.rate} Hz (HEARTBEAT 1 Hz):")
    rates = {}
    total = 0
    for t in KEY_TYPES:
        per = [c.get(t, 0) / wall for c in r["counts"]]
        rates[t] = per
        print(f"  {t:22s} mean {sum(per) / len(per):5.2f} Hz   worst vehicle {min(per):5.2f} Hz")
    for c in r["counts"]:
        total += sum(c.values())
    print(f"all messages: {total / wall:.0f} /s across {len(r['counts'])} vehicles "
          f"({total / wall / len(r['counts']):.0f} /s each)")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(9, 4))
        names = list(rates)
        ax.bar(range(len(names)), [sum(v) / len(v) for v in rates.values()], label="mean")
        ax.scatter(range(len(names)), [min(v) for v in rates.values()], color="red", zorder=3, label="worst vehicle")
        ax.axhline(args.rate, color="grey", ls="--", lw=1, label=f"requested {args.rate} Hz")
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("Hz")
        ax.set_title(f"{len(r['counts'])} simulated vehicles at 1x: sim CPU {cpu_pct:.0f} % of one core")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "sim_bench.png", dpi=100)
        print(f"chart: {out / 'sim_bench.png'}")
    except ImportError:
        pass


def oa_main(args: argparse.Namespace) -> int:
    import random

    from shapely.geometry import Point, Polygon

    from sim.vehicles.avoidance import DijkstraPlanner

    rng = random.Random(7)
    half = 1500.0
    inclusion = [Polygon([(-half, -half), (half, -half), (half, half), (-half, half)])]
    zones: list[Polygon] = []
    while len(zones) < args.zones:  # city blocks 60..250 m, not overlapping
        cx, cy = rng.uniform(-1200, 1200), rng.uniform(-1200, 1200)
        w, h = rng.uniform(60, 250), rng.uniform(60, 250)
        z = Polygon([(cx - w / 2, cy - h / 2), (cx + w / 2, cy - h / 2), (cx + w / 2, cy + h / 2), (cx - w / 2, cy + h / 2)])
        if all(z.distance(o) > 40 for o in zones):
            zones.append(z)
    t0 = time.perf_counter()
    planner = DijkstraPlanner(inclusion, zones, [], margin_m=10.0)
    build_ms = (time.perf_counter() - t0) * 1000
    legs = []
    while len(legs) < 200:
        a = (rng.uniform(-1400, 1400), rng.uniform(-1400, 1400))
        b = (rng.uniform(-1400, 1400), rng.uniform(-1400, 1400))
        if not any(z.buffer(10).contains(Point(p)) for z in zones for p in (a, b)):
            legs.append((a, b))
    times, detours, failed = [], 0, 0
    paths = []
    for a, b in legs:
        t0 = time.perf_counter()
        path = planner.path(a, b)
        times.append((time.perf_counter() - t0) * 1000)
        if path is None:
            failed += 1
        elif len(path) > 1:
            detours += 1
            paths.append((a, path))
    times.sort()
    print(f"Dijkstra planner, {args.zones} no-fly zones in a 3 x 3 km fence, margin 10 m: "
          f"graph of {len(planner.nodes)} nodes built in {build_ms:.1f} ms")
    print(f"200 legs: {detours} needed a detour, {failed} had no path; per leg median {times[100]:.2f} ms, "
          f"95th percentile {times[190]:.2f} ms, max {times[-1]:.2f} ms")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(7, 7))
        for z in zones:
            ax.fill(*z.exterior.xy, color="tab:red", alpha=0.5)
        for a, path in paths[:8]:
            xs, ys = zip(a, *path)
            ax.plot(xs, ys, lw=1.2)
            ax.plot([a[0], path[-1][0]], [a[1], path[-1][1]], color="grey", ls=":", lw=0.8)
        ax.set_aspect("equal")
        ax.set_title(f"simulated OA_TYPE 2: legs round {args.zones} no-fly zones (dotted: straight line)", fontsize=9)
        ax.set_xlabel("east, m")
        ax.set_ylabel("north, m")
        fig.tight_layout()
        fig.savefig(out / "sim_oa_bench.png", dpi=100)
        print(f"chart: {out / 'sim_oa_bench.png'}")
    except ImportError:
        pass
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--oa", action="store_true", help="benchmark the object-avoidance planner instead")
    ap.add_argument("--zones", type=int, default=12, help="no-fly zones for --oa")
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--window", type=float, default=30.0, help="measurement window, wall seconds")
    ap.add_argument("--rate", type=int, default=4, help="REQUEST_DATA_STREAM rate, Hz")
    ap.add_argument("--base-port", type=int, default=0)
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--gcs", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.gcs:
        asyncio.run(gcs_main(args.base_port, args.count, args.rate, args.window))
        return 0
    if args.oa:
        return oa_main(args)
    return asyncio.run(sim_main(args))


if __name__ == "__main__":
    sys.exit(main())
