"""Smaller hardening of dispatch/: secrets kept out of logs and the process list, failures said
loudly, late declines remembered across a restart, big snapshots decoded off the event loop."""
from __future__ import annotations

import argparse
import asyncio
import logging
import threading

import numpy as np
import pytest

from dispatch import snapshots
from dispatch.cli import broker_from_args
from dispatch.config import BrokerConfig, DispatchConfig
from dispatch.controller import Dispatcher
from dispatch.errors import DispatchError
from tests.dispatch.conftest import make_incident, wait_until


def broker_args(**kw) -> argparse.Namespace:
    values = dict(broker=None, username=None, password=None, password_file=None, ca_file=None,
                  tls_insecure=False, topic_prefix=None)
    values.update(kw)
    return argparse.Namespace(**values)


def test_passwords_never_show_in_urls_reprs_or_logs():
    """A password (also one written into the URL) is kept as a secret: the URL, repr and dump omit it."""
    cfg = BrokerConfig(url="mqtts://M07:hunter2@broker.example:8883")
    assert cfg.url == "mqtts://broker.example:8883"
    assert (cfg.username, cfg.password.get_secret_value()) == ("M07", "hunter2")
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg.model_dump())
    assert "hunter2" not in repr(BrokerConfig(password="hunter2"))


def test_password_from_a_file_or_the_environment(tmp_path, monkeypatch, caplog):
    """--password-file and PATROL_MQTT_PASSWORD keep the password out of the process list; the old
    --password still works but warns."""
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    monkeypatch.setenv("PATROL_MQTT_PASSWORD", "from-env")
    assert broker_from_args(broker_args(password_file=secret)).password.get_secret_value() == "from-file"
    assert broker_from_args(broker_args()).password.get_secret_value() == "from-env"
    with caplog.at_level(logging.WARNING):
        assert broker_from_args(broker_args(password="argv")).password.get_secret_value() == "argv"
    assert "process list" in caplog.text
    with pytest.raises(DispatchError, match="cannot read --password-file"):
        broker_from_args(broker_args(password_file=tmp_path / "missing"))


def test_a_failed_unit_save_is_an_error_not_a_debug_line(tmp_path, caplog):
    """Unit positions that cannot be journaled are lost on a restart: that is logged as an ERROR."""
    d = Dispatcher(BrokerConfig(), DispatchConfig(journal_path=tmp_path / "j.sqlite"))
    d.registry.update_location("M01", 32.0, 119.58, 0.0, "available")
    d._units_dirty.add("M01")
    d.journal.db.execute("PRAGMA query_only=1")  # a full or broken disk
    with caplog.at_level(logging.DEBUG, logger="dispatch.controller"):
        d._save_units()
    d.journal.close()
    assert [r.levelname for r in caplog.records if "unit position" in r.message] == ["ERROR"]


@pytest.mark.mosquitto
async def test_a_late_decline_is_remembered_after_a_restart(rig):
    """M01 misses its alert (timed out, M02 alerted), then declines it: after a controller restart
    M01 is still known to have declined and is not asked again."""
    await rig.start_dispatcher(ack_timeout_s=0.6)
    m01 = await rig.add_unit("M01", 100, 0)
    await rig.add_unit("M02", 400, 0)
    await rig.wait_units_known("M01", "M02")
    await rig.publish(make_incident("fire-late"))
    await wait_until(lambda: rig.dispatcher.cases.get("fire-late") and rig.dispatcher.cases["fire-late"].unit_id == "M02",
                     5, "the alert to move on to M02")
    await m01.client.ack(m01.shown[0].alert_id, "decline")
    await wait_until(lambda: "M01" in rig.dispatcher.cases["fire-late"].declined_by, 3, "the late decline")
    await rig.stop_dispatcher()
    await rig.start_dispatcher(ack_timeout_s=0.6)
    assert "M01" in rig.dispatcher.cases["fire-late"].declined_by


@pytest.mark.mosquitto
async def test_a_large_snapshot_is_decoded_off_the_event_loop(rig, monkeypatch):
    """A detection with a multi-megabyte snapshot is decoded and shrunk in a worker thread, so the
    controller keeps handling locations and acks meanwhile; the alert carries the shrunk snapshot."""
    import cv2

    threads = []
    real_fit = snapshots.fit_jpeg

    def watched_fit(jpeg, max_bytes):
        threads.append(threading.current_thread() is threading.main_thread())
        return real_fit(jpeg, max_bytes)

    monkeypatch.setattr("dispatch.controller.fit_jpeg", watched_fit)
    noise = np.random.default_rng(1).integers(0, 255, (1200, 1600, 3), dtype=np.uint8)
    jpeg = cv2.imencode(".jpg", noise, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    assert len(jpeg) > 1_000_000
    await rig.start_dispatcher()
    unit = await rig.add_unit("M01", 100, 0)
    await rig.wait_units_known("M01")
    await rig.publish(make_incident("fire-big", snapshot=jpeg))
    await wait_until(lambda: unit.shown, 10, "the alert")
    assert threads and threads[0] is False  # the first fit, of the full-size snapshot, ran off the loop
    assert 0 < len(unit.shown[0].snapshot_bytes()) <= 30_000


@pytest.mark.mosquitto
async def test_the_rider_keeps_its_ack_flush_task(rig):
    """The flush of queued acks started on (re)connect is held by the client, not left to the
    garbage collector, and stop() ends it (unsent acks stay in the store for the next start)."""
    unit = await rig.add_unit("M01", 100, 0)
    await unit.client.stop(sign_off=False)
    release = asyncio.Event()

    async def slow_flush():
        await release.wait()

    unit.client.flush_acks = slow_flush
    await unit.client.start(wait_s=5)
    await wait_until(lambda: len(unit.client._flushes) == 1, 2, "the flush task to be held")
    await unit.client.stop(sign_off=False)
    assert not unit.client._flushes
