"""Dispatch benchmark: alert latency to 500 subscribed riders, CPU of 1,000 location updates/s.

    .venv/bin/python bench/dispatch_bench.py [--riders 500] [--workers 4] [--rate 1000] [--seconds 10]

Starts a real mosquitto (tests/fixtures/broker.py) and `python -m dispatch dispatch` as a
separate process, then
  1. latency: `--riders` units (raw MQTT clients multiplexed over `--workers` processes) subscribe
     to their alerts and report their positions; one incident is published next to each unit, and
     each unit records receipt time - the alert's issued_at (set by the controller before it
     journals and publishes, so journaling is included). Targets: p99 ≤ 50 ms.
  2. ingest: a generator publishes `--rate` OwnTracks locations/s for `--seconds`; the controller
     process's CPU (utime+stime from /proc) over that window, as % of one core. Target ≤ 20 %.
Figures are printed; nothing is asserted. Run on a quiet machine for numbers you quote.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.geo import offset  # noqa: E402

ORIGIN = (32.0, 119.58)


def unit_position(i: int) -> tuple[float, float]:
    """Units on a 25 x 20 grid, 400 m apart: each incident's nearest unit is its own."""
    return offset(*ORIGIN, (i // 25) * 400.0, (i % 25) * 400.0)


def unit_id(i: int) -> str:
    return f"B{i:04d}"


# ---------------------------------------------------------------- worker (one process, many riders)
async def worker_main(host: str, port: int, first: int, count: int, timeout_s: float) -> None:
    import aiomqtt

    latencies: dict[str, float] = {}
    done = asyncio.Event()
    clients = []

    async def rider(i: int) -> None:
        uid = unit_id(i)
        async with aiomqtt.Client(host, port, identifier=f"bench-{uid}", protocol=aiomqtt.ProtocolVersion.V5,
                                  timeout=30) as c:
            clients.append(c)
            await c.subscribe(f"patrol/units/{uid}/alerts", 1)
            lat, lon = unit_position(i)
            loc = json.dumps({"_type": "location", "lat": lat, "lon": lon, "tst": int(time.time()), "acc": 5,
                              "status": "available"}).encode()
            await c.publish(f"patrol/units/{uid}/location", loc, qos=1)
            ready.append(uid)
            async for m in c.messages:
                now = time.time()
                body = json.loads(m.payload)
                if body.get("schema") == "patrol.alert/1" and uid not in latencies:
                    latencies[uid] = (now - body["issued_at"]) * 1000.0
                    if len(latencies) == count:
                        done.set()

    ready: list[str] = []
    tasks = [asyncio.create_task(rider(i)) for i in range(first, first + count)]
    while len(ready) < count:
        await asyncio.sleep(0.05)
        for t in tasks:
            if t.done() and t.exception():
                raise t.exception()
    print("READY", flush=True)
    try:
        await asyncio.wait_for(done.wait(), timeout_s)
    except TimeoutError:
        pass
    print(json.dumps({"latencies_ms": list(latencies.values()), "missing": count - len(latencies)}), flush=True)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# ---------------------------------------------------------------- helpers for the main process
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def read_controller_status(host: str, port: int) -> dict:
    import paho.mqtt.client as mqtt

    got: dict = {}
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_message = lambda cl, ud, m: got.update(json.loads(m.payload))
    c.connect(host, port)
    c.subscribe("patrol/controller/status", 1)
    deadline = time.time() + 3
    while not got and time.time() < deadline:
        c.loop(0.1)
    c.disconnect()
    return got


def publish_incidents(host: str, port: int, n: int, rate_hz: float) -> None:
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect(host, port)
    c.loop_start()
    kinds = ["fire", "crowd", "stopped_vehicle", "intrusion"]
    t0 = time.time()
    for i in range(n):
        lat, lon = offset(*unit_position(i), 20.0, 0.0)
        payload = {"schema": "patrol.detection/1", "state": "new", "incident": {
            "id": f"bench-{i:04d}", "kind": kinds[i % 4], "confidence": 0.9, "lat": lat, "lon": lon,
            "error_m": 3.0, "first_seen": time.time(), "grid_id": "G-1", "drone_id": "D1"}, "snapshot": None}
        c.publish("patrol/detections/D1", json.dumps(payload), qos=1)
        sleep = t0 + (i + 1) / rate_hz - time.time()
        if sleep > 0:
            time.sleep(sleep)
    time.sleep(0.5)
    c.loop_stop()
    c.disconnect()


def generate_locations(host: str, port: int, units: int, rate_hz: float, seconds: float) -> tuple[int, float]:
    """Publish locations at rate_hz for `seconds`: (messages sent, seconds spent sending)."""
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.max_queued_messages_set(0)
    c.connect(host, port)
    c.loop_start()
    payloads = []
    for i in range(units):
        lat, lon = unit_position(i)
        payloads.append((f"patrol/units/{unit_id(i)}/location", json.dumps(
            {"_type": "location", "lat": lat, "lon": lon, "tst": int(time.time()), "acc": 5, "vel": 30, "cog": 90,
             "batt": 80, "status": "available", "tid": "bx"}).encode()))
    sent = 0
    t0 = time.time()
    batch = max(1, int(rate_hz / 100))
    while time.time() - t0 < seconds:
        for _ in range(batch):
            topic, body = payloads[sent % units]
            c.publish(topic, body, qos=0)
            sent += 1
        sleep = t0 + sent / rate_hz - time.time()
        if sleep > 0:
            time.sleep(sleep)
    spent = time.time() - t0
    time.sleep(0.5)
    c.loop_stop()
    c.disconnect()
    return sent, spent


def write_latency_png(latencies: list[float], path: Path, riders: int, rate: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(10, 4))
    hist.hist(latencies, bins=50, color="tab:blue")
    hist.set_xlabel("alert issued -> rider receipt (ms)")
    hist.set_ylabel("alerts")
    s = sorted(latencies)
    cdf.plot(s, [100 * (i + 1) / len(s) for i in range(len(s))], color="tab:blue")
    cdf.axvline(50, color="tab:red", linestyle="--", label="target p99 50 ms")
    cdf.axhline(99, color="grey", linestyle=":")
    cdf.set_xlabel("ms")
    cdf.set_ylabel("% of alerts received")
    cdf.legend(loc="lower right")
    fig.suptitle(f"{len(latencies)} alerts, {riders} subscribed riders, {rate:g} incidents/s "
                 f"(p99 {percentile(latencies, 99):.1f} ms)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--riders", type=int, default=500)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--incident-rate", type=float, default=50.0, help="incidents published per second")
    ap.add_argument("--rate", type=float, default=1000.0, help="location updates per second")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--png", type=Path, default=Path("bench-out/dispatch_bench_latency.png"),
                    help="latency histogram + CDF (default bench-out/dispatch_bench_latency.png)")
    ap.add_argument("--worker", nargs=4, metavar=("HOST", "PORT", "FIRST", "COUNT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        host, port, first, count = args.worker
        asyncio.run(worker_main(host, int(port), int(first), int(count), 120.0))
        return 0

    from tests.fixtures.broker import MosquittoBroker, find_mosquitto

    binary = find_mosquitto()
    if binary is None:
        print("mosquitto not installed; cannot benchmark")
        return 2
    with tempfile.TemporaryDirectory(prefix="dispatch-bench-") as tmp:
        tmp = Path(tmp)
        broker = MosquittoBroker(binary, tmp)
        broker.start()
        controller = subprocess.Popen(
            [sys.executable, "-m", "dispatch", "dispatch", "--broker", broker.url, "--journal", str(tmp / "j.sqlite"),
             "--ack-timeout", "600", "--unit-silence", "600", "--status-interval", "1"],
            cwd=ROOT, stdout=open(tmp / "controller.log", "w"), stderr=subprocess.STDOUT)
        workers = []
        try:
            time.sleep(1.0)
            per = -(-args.riders // args.workers)
            for w in range(args.workers):
                first, count = w * per, min(per, args.riders - w * per)
                if count <= 0:
                    continue
                workers.append(subprocess.Popen(
                    [sys.executable, __file__, "--worker", broker.host, str(broker.port), str(first), str(count)],
                    stdout=subprocess.PIPE, text=True))
            for w in workers:
                line = w.stdout.readline().strip()
                if line != "READY":
                    raise SystemExit(f"worker failed to start: {line!r}")
            print(f"{args.riders} riders connected and subscribed over {len(workers)} processes", flush=True)
            time.sleep(1.0)  # let the controller register every unit
            status = read_controller_status(broker.host, broker.port)
            print(f"controller knows {status.get('units_known')} units", flush=True)

            # 1. alert latency
            t0 = time.time()
            publish_incidents(broker.host, broker.port, args.riders, args.incident_rate)
            latencies: list[float] = []
            missing = 0
            for w in workers:
                out, _ = w.communicate(timeout=180)
                result = json.loads(out.strip().splitlines()[-1])
                latencies += result["latencies_ms"]
                missing += result["missing"]
            print(f"\nalert publish -> rider receipt, {len(latencies)} alerts to {args.riders} riders "
                  f"({args.incident_rate:g} incidents/s, {time.time() - t0:.1f} s):")
            if latencies:
                print(f"  p50 {percentile(latencies, 50):.1f} ms   p95 {percentile(latencies, 95):.1f} ms   "
                      f"p99 {percentile(latencies, 99):.1f} ms   max {max(latencies):.1f} ms   "
                      f"mean {statistics.fmean(latencies):.1f} ms   (target p99 <= 50 ms)")
            print(f"  alerts missing: {missing}")
            if latencies:
                write_latency_png(latencies, args.png, args.riders, args.incident_rate)
                print(f"  plot: {args.png}")

            # 2. location ingest CPU
            before_status = read_controller_status(broker.host, broker.port)
            idle0, t_idle = cpu_seconds(controller.pid), time.time()
            time.sleep(3.0)
            idle_pct = 100 * (cpu_seconds(controller.pid) - idle0) / (time.time() - t_idle)
            c0, w0 = cpu_seconds(controller.pid), time.time()
            sent, spent = generate_locations(broker.host, broker.port, args.riders, args.rate, args.seconds)
            wall = time.time() - w0  # includes the 0.5 s drain after the last message
            cpu_used = cpu_seconds(controller.pid) - c0
            busy_pct = 100 * cpu_used / wall
            time.sleep(1.5)
            after_status = read_controller_status(broker.host, broker.port)
            ingested = (after_status.get("locations_ingested") or 0) - (before_status.get("locations_ingested") or 0)
            print(f"\nlocation ingest: {sent} sent in {spent:.1f} s = {sent / spent:.0f}/s; "
                  f"controller ingested {ingested}; CPU window {wall:.1f} s")
            print(f"  controller CPU {busy_pct:.1f} % of one core under load (idle baseline {idle_pct:.1f} %), "
                  f"{busy_pct - idle_pct:.1f} % net")
            if ingested:
                per_msg_us = 1e6 * cpu_used / ingested
                print(f"  {per_msg_us:.0f} us CPU per update -> {per_msg_us / 10:.1f} % of one core at 1,000 updates/s "
                      f"(target <= 20 %)")
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
            controller.send_signal(signal.SIGTERM)
            try:
                controller.wait(10)
            except subprocess.TimeoutExpired:
                controller.kill()
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
