"""Delivery soak: alerts to many riders through a real mosquitto while the broker restarts and the
controller (`python -m dispatch dispatch`) is killed with SIGKILL, several times.

Checked, and printed as figures:
- lost: every alert the controller journaled reached the rider it was addressed to;
- shown twice: no rider client showed an alert_id twice (replays are recognised and dropped);
- order: per incident, no subscriber sees for the first time a retained state older than one it
  has already seen (a replay after a kill repeats states, in order: repeats are not new states);
  per unit, no cancel arrives before its alert;
- every incident resolved.

The default run has a short version (~10 s); `-m soak` runs 1,000 incidents (1,000+ alerts, some
timed out and cancelled) to 50 riders.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from common.values import VISION_KINDS
from dispatch.config import BrokerConfig
from dispatch.mqtt import MqttSession
from tests.dispatch.conftest import make_incident, wait_until

pytestmark = pytest.mark.mosquitto
ROOT = Path(__file__).resolve().parents[2]


class DeliveryWitness:
    """A persistent subscriber (survives broker restarts) recording incident states and unit alerts in order."""

    def __init__(self, url: str):
        self.session = MqttSession(BrokerConfig(url=url, reconnect_min_s=0.1, reconnect_max_s=0.5),
                                   client_id="soak-witness", persistent=True,
                                   subscriptions=[("patrol/incidents/+", 1), ("patrol/units/+/alerts", 1),
                                                  ("patrol/controller/status", 1)],
                                   name="soak witness")
        self.states: dict[str, list[dict]] = defaultdict(list)  # incident id -> records in arrival order
        self.unit_messages: dict[str, list[dict]] = defaultdict(list)
        self.controller_states: list[str] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.session.run(self._on_message, self._stop))
        await self.session.wait_connected(5)

    async def stop(self) -> None:
        self._stop.set()
        if self._task:
            await self._task

    async def _on_message(self, message) -> None:
        if not message.payload:
            return
        body = json.loads(message.payload)
        levels = message.topic.value.split("/")
        if levels[1] == "controller":
            self.controller_states.append(body["state"])
        elif levels[1] == "incidents":
            self.states[levels[2]].append(body)
        else:
            self.unit_messages[levels[2]].append(body)

    def closed_incidents(self) -> set[str]:
        return {i for i, recs in self.states.items() if recs and recs[-1]["closed"]}

    def get_stale_states(self) -> list[str]:
        """States seen for the first time after a newer one of the same incident."""
        stale = []
        for incident_id, records in self.states.items():
            seen, newest = set(), -1.0
            for rec in records:
                key = json.dumps(rec, sort_keys=True)
                if key in seen:
                    continue  # a re-delivery of a state already seen (replay after a kill)
                seen.add(key)
                if rec["updated_at"] < newest:
                    stale.append(f"{incident_id}: {rec['status']} @ {rec['updated_at']} after {newest}")
                newest = max(newest, rec["updated_at"])
        return stale

    def get_cancels_before_alert(self) -> list[str]:
        bad = []
        for unit_id, messages in self.unit_messages.items():
            alerted = set()
            for m in messages:
                if m["schema"] == "patrol.alert/1":
                    alerted.add(m["alert_id"])
                elif m["alert_id"] not in alerted:
                    bad.append(f"{unit_id}: cancel of {m['alert_id']} before the alert")
        return bad


ACK_TIMEOUT_S = 2.0  # short, so the silent riders' alerts time out and are cancelled within the run


def start_controller(url: str, journal: Path, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "ab")
    cmd = [sys.executable, "-m", "dispatch", "dispatch", "--broker", url, "--journal", str(journal),
           "--ack-timeout", str(ACK_TIMEOUT_S), "--unit-silence", "120", "--escalation-retry", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    log.close()
    return proc


def incident_at(n: int):
    kinds = list(VISION_KINDS)
    # 200 m apart on a grid: every one is a new incident, never another sighting of an open one.
    return make_incident(f"soak-{n:04d}", kinds[n % len(kinds)], (n % 40) * 200.0, (n // 40) * 200.0)


async def keep_locations_flowing(rig, stop: asyncio.Event) -> None:
    while not stop.is_set():
        for unit in rig.units.values():
            unit.send_location()
        await asyncio.sleep(1.0)


async def run_delivery_soak(rig, tmp_path: Path, incidents: int, riders: int, broker_restarts: int,
                            controller_kills: int, rate_hz: float, silent_riders: int) -> dict:
    """silent_riders never answer: their alerts time out, are cancelled and go to another unit."""
    started = time.monotonic()
    journal, log_path = tmp_path / "controller.sqlite", tmp_path / "controller.log"
    witness = DeliveryWitness(rig.mosquitto.url)
    await witness.start()
    shown = Counter()
    proc = start_controller(rig.mosquitto.url, journal, log_path)
    stop = asyncio.Event()
    locator = None
    try:
        # Its first connection creates the controller's session: detections before it reach nobody.
        await wait_until(lambda: "online" in witness.controller_states, 15, "the controller online")
        for i in range(riders):
            unit = await rig.add_unit(f"S{i:02d}", (i % 10) * 800.0, (i // 10) * 800.0,
                                      auto_answer=i >= silent_riders)
            unit.accept_delay_s, unit.on_scene_s = 0.05, 0.1
            count_shown = unit.client.on_alert

            async def on_alert(alert, count_shown=count_shown):
                shown[alert.alert_id] += 1
                await count_shown(alert)

            unit.client.on_alert = on_alert
        locator = asyncio.create_task(keep_locations_flowing(rig, stop))
        faults = []  # alternating, spread evenly over the stream
        for k in range(max(broker_restarts, controller_kills)):
            faults += ["broker"] * (k < broker_restarts) + ["controller"] * (k < controller_kills)
        fault_at = {int(incidents * (k + 1) / (len(faults) + 1)): f for k, f in enumerate(faults)}
        for n in range(incidents):
            fault = fault_at.get(n)
            if fault == "broker":
                rig.mosquitto.restart(down_s=0.3)
            elif fault == "controller":
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=5)
                await asyncio.sleep(0.3)
                proc = start_controller(rig.mosquitto.url, journal, log_path)
            await rig.publish(incident_at(n))
            await asyncio.sleep(1.0 / rate_hz)
        ids = {incident_at(n).id for n in range(incidents)}
        try:
            await wait_until(lambda: ids <= witness.closed_incidents(), 30 + incidents / 10, "every incident resolved")
        except BaseException:
            open_ = sorted(ids - witness.closed_incidents())
            print("unresolved:", len(open_), [(i, [r["status"] for r in witness.states.get(i, [])]) for i in open_[:8]])
            print(log_path.read_text()[-3000:])
            raise
        await asyncio.sleep(0.5)  # room for a stray duplicate
    finally:
        stop.set()
        if locator:
            await locator
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        await witness.stop()

    db = sqlite3.connect(journal)
    issued = dict(db.execute("SELECT alert_id, unit_id FROM alerts").fetchall())
    by_status = dict(db.execute("SELECT status, COUNT(*) FROM alerts GROUP BY status").fetchall())
    db.close()
    lost = sorted(a for a, unit_id in issued.items()
                  if rig.units[unit_id].client.store.state(a) is None)
    figures = {
        "incidents": incidents, "riders": riders, "broker_restarts": broker_restarts,
        "controller_kills": controller_kills, "silent_riders": silent_riders, "alerts_issued": len(issued),
        "alerts_timed_out_and_cancelled": by_status.get("timed_out", 0), "alerts_by_status": by_status, "alerts_lost": len(lost),
        "alerts_shown_twice": sum(1 for c in shown.values() if c > 1),
        "replays_suppressed_by_riders": sum(u.client.duplicates for u in rig.units.values()),
        "stale_incident_states": len(witness.get_stale_states()),
        "cancels_before_alert": len(witness.get_cancels_before_alert()),
        "incidents_resolved": len(witness.closed_incidents() & ids),
        "wall_s": round(time.monotonic() - started, 1),
    }
    print("delivery soak:", json.dumps(figures))
    assert lost == [], f"alerts lost: {lost[:10]}"
    assert [a for a, c in shown.items() if c > 1] == []
    assert witness.get_stale_states() == []
    assert witness.get_cancels_before_alert() == []
    return figures


async def test_delivery_through_broker_restart_and_controller_kill(rig, tmp_path):
    """Short version: 40 incidents to 8 riders (one silent), the broker restarted once, the controller killed once."""
    figures = await run_delivery_soak(rig, tmp_path, incidents=40, riders=8, broker_restarts=1,
                                      controller_kills=1, rate_hz=12, silent_riders=1)
    assert figures["alerts_timed_out_and_cancelled"] >= 1
    assert figures["incidents_resolved"] == 40 and figures["alerts_issued"] > 40


@pytest.mark.soak
async def test_delivery_soak_1000_alerts_50_riders(rig, tmp_path):
    """1,000 incidents to 50 riders (5 silent), the broker restarted 3 times and the controller killed 3 times."""
    figures = await run_delivery_soak(rig, tmp_path, incidents=1000, riders=50, broker_restarts=3,
                                      controller_kills=3, rate_hz=25, silent_riders=5)
    assert figures["alerts_issued"] >= 1000
    assert figures["incidents_resolved"] == 1000
