"""The officer's terminal app and the embedded demo broker."""
from __future__ import annotations

import pytest

import asyncio
import io
import time

import cv2
import numpy as np

from common.values import Incident, IncidentEvent, IncidentKind, IncidentState
from dispatch.config import DispatchConfig
from dispatch.controller import Dispatcher
from dispatch.embedded import EmbeddedBroker
from dispatch.publisher import DetectionPublisher
from dispatch.rider import RiderApp, RiderClient, RiderStore
from tests.dispatch.conftest import make_incident, wait_until


def big_jpeg() -> bytes:
    """A noisy 1280x720 frame: far above the 30 KB alert cap."""
    rng = np.random.default_rng(1)
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return buf.tobytes()


@pytest.mark.mosquitto
async def test_rider_app_shows_alert_once_saves_snapshot_and_answers_by_key(rig, tmp_path):
    """The app prints the alert (kind, distance, compass, coordinates), saves the ≤30 KB snapshot, 'a' accepts."""
    await rig.start_dispatcher(ack_timeout_s=10)
    out = io.StringIO()
    client = RiderClient(rig.broker_config, "M07", RiderStore(tmp_path / "m07.sqlite"))
    app = RiderApp(client, tmp_path / "snaps", gps=None, simulate=False, start=(32.0045, 119.58), out=out)
    await client.start(wait_s=5)
    try:
        client.publish_location(app.lat, app.lon)
        await rig.wait_units_known("M07")
        await rig.publish(make_incident("fire-app", snapshot=big_jpeg()))
        await wait_until(lambda: "ALERT" in out.getvalue(), 3, "the alert on screen")
        text = out.getvalue()
        assert "FIRE" in text and " S (bearing 180 deg)" in text and "32.000000, 119.580000" in text
        assert 490 < app.current.distance_m < 510
        snap = tmp_path / "snaps" / f"{app.current.alert_id}.jpg"
        assert snap.exists() and 1000 < snap.stat().st_size <= 30_000
        assert await app.key("a")
        await wait_until(lambda: rig.get_case_status("fire-app") == "accepted", 3, "accept to reach the controller")
        assert await app.key("x")
        await wait_until(lambda: "fire-app" not in rig.dispatcher.cases, 3, "resolved")
        assert not await app.key("q")
        assert text.count("ALERT ") == 1
    finally:
        await client.stop()
        client.store.close()


async def test_embedded_amqtt_broker_carries_an_alert(tmp_path):
    """The zero-setup demo broker (amqtt, MQTT 3.1.1) runs the same controller and rider code."""
    async with EmbeddedBroker() as broker:
        cfg = broker.client_config(connect_timeout_s=3)
        dispatcher = Dispatcher(cfg, DispatchConfig(journal_path=tmp_path / "j.sqlite"))
        stop = asyncio.Event()
        task = asyncio.create_task(dispatcher.run(stop))
        shown = []

        async def on_alert(alert):
            shown.append(alert)

        rider = RiderClient(cfg, "M01", RiderStore(tmp_path / "r.sqlite"), on_alert=on_alert)
        try:
            await dispatcher.session.wait_connected(5)
            await rider.start(wait_s=5)
            rider.publish_location(32.001, 119.58)
            await wait_until(lambda: "M01" in dispatcher.registry, 3, "unit known")
            async with DetectionPublisher(cfg) as pub:
                now = time.time()
                await pub.publish(IncidentEvent(IncidentState.NEW, Incident(
                    "demo-1", IncidentKind.CROWD, 0.8, now, now, 32.0, 119.58, 5.0, "D1")))
            await wait_until(lambda: shown, 5, "the alert via amqtt")
        finally:
            await rider.stop()
            rider.store.close()
            stop.set()
            await task
    assert shown[0].incident.id == "demo-1"
