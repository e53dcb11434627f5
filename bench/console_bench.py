"""Operator console benchmark: how long a live-view button takes to come back with the run's answer.

    .venv/bin/python bench/console_bench.py [--commands 100]

One drone sweeping DY-C0713 on the embedded broker, the live view on a free loopback port with a
control token. Once the drone is in the air, pause_drone / resume_drone are sent alternately as the
page sends them (POST /control/command): HTTP -> the view's MQTT session -> patrol/operator/commands
-> the run carries it out -> patrol/operator/results -> HTTP answer. Prints the median, p95 and
maximum round trip in wall milliseconds. Nothing is asserted; run on a quiet machine for numbers
you quote.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from patrol import run_patrol  # noqa: E402
from runloop.scenario import parse_scenario  # noqa: E402
from runloop.web import WebOptions  # noqa: E402

CONTROL = "bench-control-token"


async def http(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {CONTROL}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    writer.write(head.encode() + body)
    data = await reader.read()
    writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def main(commands: int) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scenario = parse_scenario({"name": "console-bench", "cells": ["DY-C0713"], "duration_s": 1800, "speedup": 20,
                               "fleet": {"drones": 1, "dock": "DOCK-NE"}, "riders": {"count": 0}})
    with tempfile.TemporaryDirectory() as out:
        run = asyncio.create_task(run_patrol(scenario, Path(out), live=False,
                                             web=WebOptions("127.0.0.1", port, control_token=CONTROL)))
        while True:  # the view up and the drone in the air
            await asyncio.sleep(0.5)
            try:
                status, body = await http(port, "GET", "/state.json")
            except OSError:
                continue
            if status == 200 and json.loads(body)["live"]["drones"][0]["armed"]:
                break
        ms = []
        for i in range(commands):
            command = {"command": "pause_drone" if i % 2 == 0 else "resume_drone", "drone": "1"}
            t = time.perf_counter()
            status, body = await http(port, "POST", "/control/command", json.dumps(command).encode())
            ms.append((time.perf_counter() - t) * 1000.0)
            assert status == 200, body
        await http(port, "POST", "/control/command", b'{"command": "recall_drone", "drone": "1"}')  # home now
        await http(port, "POST", "/control/command", b'{"command": "end_shift"}')
        await run
    ms.sort()
    print(f"console button round trip, {len(ms)} commands: median {statistics.median(ms):.1f} ms, "
          f"p95 {ms[max(0, int(0.95 * len(ms)) - 1)]:.1f} ms, max {ms[-1]:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=100)
    asyncio.run(main(parser.parse_args().commands))
