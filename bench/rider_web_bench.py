"""Rider web app benchmark: alert published -> the rider page shows it, through a real broker.

    .venv/bin/python bench/rider_web_bench.py [--alerts 200] [--gap-ms 50]

Starts a real mosquitto with its WebSockets listener (tests/fixtures/broker.py), the controller's
web server with the rider app (dispatch/riderapp.py) and a headless Chromium at a phone's
viewport signed in as unit M01. The controller side publishes `--alerts` alerts one after the
other (QoS 1, `--gap-ms` apart once the previous is on screen); the page notes the wall time at
which it rendered each (window.rider.shownAtMs), and the latency is that - the alert's issued_at
(set just before publishing; same machine, same clock). Prints p50 / p99 / max; asserts nothing.
Run on a quiet machine for numbers you quote.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dispatch.riderapp import RiderPageConfig  # noqa: E402
from tests.dispatch.riderweb import (  # noqa: E402
    ControllerSide,
    alert_payload,
    have_browser,
    phone_browser,
    serving_rider_page,
    sign_in,
    wait_online,
    wait_page,
)
from tests.fixtures.broker import MosquittoBroker, find_mosquitto  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=50.0, help="pause after an alert is shown, before the next")
    args = parser.parse_args()
    binary = find_mosquitto()
    if binary is None or not have_browser():
        print("rider_web_bench: needs mosquitto and Debian's chromium + chromium-driver; skipped")
        return 0
    with tempfile.TemporaryDirectory(prefix="rider-bench-") as tmp:
        broker = MosquittoBroker(binary, Path(tmp))
        broker.start()
        controller = ControllerSide(broker.host, broker.port)
        issued: dict[str, float] = {}
        try:
            with serving_rider_page(RiderPageConfig(ws_url=broker.ws_url)) as url, phone_browser() as phone:
                sign_in(phone, url, "M01", "bench")
                wait_online(phone)
                for n in range(args.alerts):
                    alert_id = f"bench-{n:04d}"
                    payload = alert_payload(alert_id)
                    issued[alert_id] = json.loads(payload)["issued_at"]
                    controller.send_alert("M01", payload)
                    wait_page(phone, f"return window.rider.shownAtMs['{alert_id}']", f"alert {alert_id}")
                    time.sleep(args.gap_ms / 1000)
                shown = phone.execute_script("return window.rider.shownAtMs")
                duplicates = phone.execute_script("return window.rider.duplicates")
        finally:
            controller.close()
            broker.stop(kill=True)
    latencies_ms = [shown[a] - issued[a] * 1000 for a in issued]
    print(f"rider web app: {len(latencies_ms)} alerts published -> shown on the page "
          f"(mosquitto over WebSockets, headless Chromium at 360x740)")
    print(f"  p50 {percentile(latencies_ms, 50):.1f} ms  p99 {percentile(latencies_ms, 99):.1f} ms  "
          f"max {max(latencies_ms):.1f} ms  mean {statistics.fmean(latencies_ms):.1f} ms  duplicates {duplicates}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
