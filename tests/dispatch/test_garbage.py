"""Hostile and broken payloads are logged with the reason and dropped; the service keeps working."""
from __future__ import annotations

import pytest

import json
import logging

import aiomqtt

from tests.dispatch.conftest import make_incident, wait_until

pytestmark = pytest.mark.mosquitto  # needs the real broker binary

GARBAGE = [
    ("patrol/detections/D1", b"\x00\xff not json"),
    ("patrol/detections/D1", b"{}"),
    ("patrol/detections/D1", json.dumps({"schema": "patrol.detection/9", "state": "new", "incident": {}}).encode()),
    ("patrol/detections/D1", json.dumps({"state": "new", "incident": {
        "id": "x/y#", "kind": "fire", "confidence": 0.9, "lat": 32, "lon": 119, "first_seen": 1}}).encode()),
    ("patrol/detections/D1", json.dumps({"state": "new", "incident": {
        "id": "ok-id", "kind": "alien", "confidence": 7, "lat": 999, "lon": 119, "first_seen": 1}}).encode()),
    ("patrol/detections/D1", json.dumps({"state": "new", "snapshot": "!!notbase64!!", "incident": {
        "id": "ok-id2", "kind": "fire", "confidence": 0.5, "lat": 32, "lon": 119, "first_seen": 1}}).encode()),
    ("patrol/detections/D1", json.dumps({"state": "new", "incident": {
        "id": "spoof", "kind": "fire", "confidence": 0.5, "lat": 32, "lon": 119, "first_seen": 1,
        "drone_id": "D2"}}).encode()),
    ("patrol/detections/D1", b"[" * 100_000),
    ("patrol/units/M01/location", b'{"_type": "location", "lat": "north", "lon": 119, "tst": 1}'),
    ("patrol/units/M01/location", b'{"_type": "location", "lat": NaN, "lon": 119, "tst": 1}'),
    ("patrol/units/bad id/location", b'{"_type": "location", "lat": 32, "lon": 119, "tst": 1}'),
    ("patrol/units/M01/acks", b'{"alert_id": "nope", "action": "accept"}'),
    ("patrol/units/M01/acks", b'{"alert_id": "a", "action": "explode"}'),
    ("patrol/units/M01/status", b'"online"'),
    ("patrol/units/M01/location", b""),
]


async def test_garbage_payloads_are_logged_and_dropped(rig, caplog):
    """Every kind of broken payload is dropped with a reason naming the topic; a good incident still goes out."""
    caplog.set_level(logging.WARNING, logger="dispatch.controller")
    await rig.start_dispatcher()
    unit = await rig.add_unit("M01", 100, 0)
    await rig.wait_units_known("M01")
    async with aiomqtt.Client(rig.mosquitto.host, rig.mosquitto.port) as client:
        for topic, payload in GARBAGE:
            await client.publish(topic, payload, qos=1)
    await wait_until(lambda: rig.dispatcher.stats.invalid >= len(GARBAGE), 5, "all garbage to be rejected")

    reasons = [r.getMessage() for r in caplog.records if r.getMessage().startswith("dropped message on")]
    assert len(reasons) == len(GARBAGE)
    assert any("Invalid JSON" in r for r in reasons)
    assert any("kind" in r and "confidence" in r for r in reasons)
    assert any("unknown alert nope" in r for r in reasons)
    assert any("names drone 'D2'" in r for r in reasons)
    assert any("bad id" in r and "not a valid id" in r for r in reasons)
    assert all("patrol/" in r for r in reasons)

    await rig.publish(make_incident("fire-after-garbage"))
    await wait_until(lambda: unit.shown, 3, "a valid incident to be dispatched after the garbage")
    assert rig.dispatcher.registry.get("M01").lat > 31.9  # the NaN/"north" fixes did not overwrite the position


async def test_ack_for_another_units_alert_is_refused(rig, caplog):
    """M02 answering M01's alert is dropped with the reason; M01's alert stays open."""
    caplog.set_level(logging.WARNING, logger="dispatch.controller")
    await rig.start_dispatcher(ack_timeout_s=10)
    m1 = await rig.add_unit("M01", 100, 0)
    m2 = await rig.add_unit("M02", 900, 0)
    await rig.wait_units_known("M01", "M02")
    await rig.publish(make_incident("fire-5"))
    await wait_until(lambda: m1.shown, 3, "M01 alerted")
    await m2.client.ack(m1.shown[0].alert_id, "accept")
    await wait_until(lambda: rig.dispatcher.stats.invalid >= 1, 3, "the forged ack to be rejected")
    assert "addressed to M01" in rig.dispatcher.stats.last_invalid_reason
    assert rig.dispatcher.cases["fire-5"].status == "alerting"
