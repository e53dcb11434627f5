"""Nothing lost, nothing shown twice: broker restart mid-stream, controller killed with SIGKILL."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from common.values import VISION_KINDS
from tests.dispatch.conftest import make_incident, wait_until

pytestmark = pytest.mark.mosquitto  # needs the real broker binary

ROOT = Path(__file__).resolve().parents[2]
UNIT_POSITIONS = [(i * 300.0, (i % 2) * 200.0) for i in range(4)]


async def add_auto_units(rig, accept_delay_s: float = 0.0) -> None:
    for i, (north, east) in enumerate(UNIT_POSITIONS):
        unit = await rig.add_unit(f"M{i:02d}", north, east, auto_answer=True)
        unit.accept_delay_s = accept_delay_s


def incident_near_unit(n: int):
    north, east = UNIT_POSITIONS[n % len(UNIT_POSITIONS)]
    kinds = list(VISION_KINDS)
    # Every 4th one has the same kind: 100 m apart, so that it is a new incident and not the
    # same one reported again (that would be linked, not alerted).
    return make_incident(f"inc-{n:03d}", kinds[n % len(kinds)], north + 30, east + 100 * (n // len(kinds)))


async def keep_locations_flowing(rig, stop: asyncio.Event) -> None:
    while not stop.is_set():
        for unit in rig.units.values():
            unit.send_location()
        await asyncio.sleep(0.5)


async def test_broker_restart_mid_stream_loses_no_alert(rig):
    """Mosquitto restarts while incidents stream in: every incident reaches one unit exactly once and closes."""
    await rig.start_dispatcher(ack_timeout_s=8, unit_silence_s=30)
    await add_auto_units(rig)
    await rig.wait_units_known(*rig.units)
    stop = asyncio.Event()
    locator = asyncio.create_task(keep_locations_flowing(rig, stop))
    ids = []
    try:
        for n in range(16):
            if n == 8:
                rig.mosquitto.restart(down_s=0.5)
            inc = incident_near_unit(n)
            ids.append(inc.id)
            await rig.publish(inc)
            await asyncio.sleep(0.08)
        await wait_until(lambda: len(rig.get_shown_incident_ids()) >= len(ids), 20, "all incidents shown")
        await wait_until(lambda: not rig.dispatcher.cases, 20, "all incidents resolved")
    finally:
        stop.set()
        await locator
    await asyncio.sleep(0.5)  # time for a stray duplicate to show up if there were one
    rig.assert_each_incident_shown_once(ids)
    assert all(u.client.session.connections >= 2 for u in rig.units.values())  # they really reconnected


def start_controller(url: str, journal: Path, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "ab")
    cmd = [sys.executable, "-m", "dispatch", "-v", "dispatch", "--broker", url, "--journal", str(journal),
           "--ack-timeout", "8", "--unit-silence", "30", "--escalation-retry", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    log.close()
    return proc


async def test_controller_kill_9_loses_no_alert_and_shows_none_twice(rig, tmp_path):
    """`patrol dispatch` is SIGKILLed mid-stream and restarted on its journal: no alert lost, none shown twice."""
    journal = tmp_path / "controller.sqlite"
    log_path = tmp_path / "controller.log"
    probe = await rig.probe("patrol/controller/status")
    proc = start_controller(rig.mosquitto.url, journal, log_path)
    try:
        await wait_until(lambda: any(b and b.get("state") == "online" for b in probe.get_bodies("status")), 15,
                         "controller online")
        # Units answer 1 s after an alert, so the kill lands while an alert is still unanswered:
        # the restarted controller must replay it and the rider must not show it a second time.
        await add_auto_units(rig, accept_delay_s=1.0)
        await asyncio.sleep(0.5)
        stop = asyncio.Event()
        locator = asyncio.create_task(keep_locations_flowing(rig, stop))
        ids = []
        try:
            for n in range(16):
                if n == 6:
                    await wait_until(lambda: len(rig.get_shown_incident_ids()) >= 3, 10, "first alerts out")
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(timeout=5)
                    await wait_until(lambda: any(b and b.get("state") == "offline" for b in probe.get_bodies("status")),
                                     10, "Last Will: controller offline")
                if n == 11:
                    proc = start_controller(rig.mosquitto.url, journal, log_path)
                inc = incident_near_unit(n)
                ids.append(inc.id)
                await rig.publish(inc)
                await asyncio.sleep(0.1)
            await wait_until(lambda: len(rig.get_shown_incident_ids()) >= len(ids), 30, "all incidents shown")
        finally:
            stop.set()
            await locator
        await asyncio.sleep(1.0)
        rig.assert_each_incident_shown_once(ids)
        assert sum(u.client.duplicates for u in rig.units.values()) >= 1  # a replayed copy was suppressed
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    if proc.returncode not in (0, -signal.SIGTERM):
        pytest.fail(f"controller exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")


async def test_alert_queued_for_offline_rider_survives_broker_restart(rig):
    """A rider out of coverage when alerted, then the broker restarts: the rider still gets it, once."""
    await rig.start_dispatcher(ack_timeout_s=15)
    unit = await rig.add_unit("M01", 150, 0)
    await rig.wait_units_known("M01")
    await unit.client.stop(sign_off=False)  # coverage lost; the unit stays on duty

    await rig.publish(make_incident("fire-offline"))
    await wait_until(lambda: rig.get_case_status("fire-offline") == "alerting", 3, "alert issued")
    await asyncio.sleep(0.3)  # let the outbox hand it to the broker
    rig.mosquitto.restart()
    await unit.client.start(wait_s=5)
    await wait_until(lambda: unit.shown, 5, "the queued alert after reconnecting")
    await asyncio.sleep(0.5)
    assert [a.incident.id for a in unit.shown] == ["fire-offline"]


async def test_rider_restart_does_not_show_an_alert_again(rig, tmp_path):
    """The rider app restarts on its store and the controller replays the alert: it is not shown again."""
    await rig.start_dispatcher(ack_timeout_s=15)
    unit = await rig.add_unit("M01", 150, 0)
    await rig.wait_units_known("M01")
    await rig.publish(make_incident("fire-replay"))
    await wait_until(lambda: unit.shown, 3, "alert shown")
    await unit.client.stop(sign_off=False)
    await rig.stop_dispatcher()            # the controller restarts and replays the unanswered alert
    await rig.start_dispatcher(ack_timeout_s=15)
    await unit.client.start(wait_s=5)
    await wait_until(lambda: unit.client.duplicates >= 1, 5, "the replayed copy to reach the rider")
    assert len(unit.shown) == 1
    await unit.client.ack(unit.shown[0].alert_id, "accept")
    await wait_until(lambda: rig.get_case_status("fire-replay") == "accepted", 3, "accept after replay")


async def test_journal_failure_stops_the_controller_without_losing_the_detection(rig):
    """The journal cannot be written: the controller stops instead of acknowledging; after a restart
    on a healthy journal the broker redelivers the detection and the unit is alerted."""
    from dispatch.errors import JournalError

    d = await rig.start_dispatcher()
    unit = await rig.add_unit("M01", 100, 0)
    await rig.wait_units_known("M01")
    await asyncio.sleep(2.2)  # let the unit positions reach the journal
    d.journal.db.execute("PRAGMA query_only=1")  # every write now fails, like a full or broken disk
    await rig.publish(make_incident("fire-disk"))
    with pytest.raises(JournalError):
        await asyncio.wait_for(rig._task, 5)
    rig._task = None
    assert unit.shown == []
    await rig.start_dispatcher()
    await wait_until(lambda: unit.shown, 5, "the redelivered detection to be dispatched")
    assert [a.incident.id for a in unit.shown] == ["fire-disk"]
