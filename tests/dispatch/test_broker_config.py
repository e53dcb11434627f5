"""`patrol broker-config` output run by a real mosquitto: users, ACL denials, TLS listener."""
from __future__ import annotations

import asyncio
import json

import aiomqtt
import pytest

from dispatch.broker_config import (CONTROLLER_USER, BrokerLayout, mosquitto_hash, write_broker_config)
from dispatch.config import BrokerConfig
from dispatch.errors import DispatchError
from dispatch.mqtt import MqttSession
from tests.fixtures.broker import root_user_lines
from tests.fixtures.ports import free_port


@pytest.fixture
def secured_broker(mosquitto_factory):
    """A mosquitto running exactly what broker-config wrote (hashes made in Python, not mosquitto_passwd)."""
    made = {}

    def config(port, workdir):
        layout = BrokerLayout(units=["M01", "M02"], drones=["D1"], port=port, tls_port=free_port(), bind="127.0.0.1",
                              run_as_root=bool(root_user_lines()))
        files = write_broker_config(layout, workdir / "broker")
        made.update(layout=layout, files=files)
        return files.config_path.read_text()

    broker = mosquitto_factory(config)
    return broker, made["layout"], made["files"]


def client(broker, user, files, **kw):
    return aiomqtt.Client(broker.host, broker.port, username=user, password=files.credentials[user],
                          protocol=aiomqtt.ProtocolVersion.V5, timeout=3, **kw)


async def collect(c: aiomqtt.Client, into: list, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            async for m in c.messages:
                into.append((m.topic.value, m.payload))
    except TimeoutError:
        pass


@pytest.mark.mosquitto
async def test_acl_denials_hold(secured_broker):
    """A unit cannot publish another unit's location nor read another unit's alerts; its own traffic flows."""
    broker, layout, files = secured_broker
    seen_by_controller: list = []
    seen_by_m01: list = []
    seen_by_m02: list = []
    async with client(broker, CONTROLLER_USER, files) as ctl, client(broker, "M01", files) as m01, \
            client(broker, "M02", files) as m02:
        await ctl.subscribe("patrol/#", 1)
        await m01.subscribe("patrol/units/M01/alerts", 1)
        await m01.subscribe("patrol/units/M02/alerts", 1)   # not allowed: must receive nothing from it
        await m01.subscribe("patrol/incidents/+", 1)
        await m02.subscribe("patrol/units/M02/alerts", 1)
        await m01.publish("patrol/units/M01/location", b'{"own": true}', qos=1)
        await m01.publish("patrol/units/M02/location", b'{"forged": true}', qos=1)
        await m01.publish("patrol/units/M01/alerts", b'{"self-alert": true}', qos=1)
        await m01.publish("patrol/detections/D1", b'{"fake": true}', qos=1)
        await ctl.publish("patrol/units/M02/alerts", b'{"for": "M02"}', qos=1)
        await ctl.publish("patrol/units/M01/alerts", b'{"for": "M01"}', qos=1)
        await ctl.publish("patrol/incidents/fire-1", b'{"public": true}', qos=1, retain=True)
        await asyncio.gather(collect(ctl, seen_by_controller, 1.0), collect(m01, seen_by_m01, 1.0),
                             collect(m02, seen_by_m02, 1.0))

    ctl_topics = [t for t, _ in seen_by_controller]
    assert "patrol/units/M01/location" in ctl_topics
    assert "patrol/units/M02/location" not in ctl_topics       # forged location dropped
    assert b'{"self-alert": true}' not in [p for _, p in seen_by_controller]
    assert "patrol/detections/D1" not in ctl_topics             # units cannot pose as drones
    assert [p for t, p in seen_by_m01 if t.endswith("/alerts")] == [b'{"for": "M01"}']
    assert ("patrol/incidents/fire-1", b'{"public": true}') in seen_by_m01
    assert [p for t, p in seen_by_m02 if t.endswith("/alerts")] == [b'{"for": "M02"}']


@pytest.mark.mosquitto
async def test_drone_user_publishes_only_its_detections(secured_broker):
    """The vision worker for D1 may publish D1's detections and nothing else."""
    broker, layout, files = secured_broker
    seen: list = []
    async with client(broker, CONTROLLER_USER, files) as ctl, client(broker, "drone-D1", files) as d1:
        await ctl.subscribe("patrol/#", 1)
        await d1.publish("patrol/detections/D1", b"{}", qos=1)
        await d1.publish("patrol/detections/D2", b"{}", qos=1)
        await d1.publish("patrol/units/M01/alerts", b"{}", qos=1)
        await collect(ctl, seen, 0.8)
    assert [t for t, _ in seen] == ["patrol/detections/D1"]


@pytest.mark.mosquitto
async def test_wrong_password_and_anonymous_are_refused(secured_broker):
    """No anonymous access; a wrong password is refused."""
    broker, layout, files = secured_broker
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(broker.host, broker.port, timeout=3):
            pass
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(broker.host, broker.port, username="M01", password="guess", timeout=3):
            pass


@pytest.mark.mosquitto
async def test_tls_listener_with_generated_certificates(secured_broker):
    """A unit logs in over mqtts:// with the generated CA (our MqttSession TLS path) and its location arrives."""
    broker, layout, files = secured_broker
    tls = BrokerConfig(url=f"mqtts://127.0.0.1:{layout.tls_port}", username="M01", password=files.credentials["M01"],
                       ca_file=files.ca_file, connect_timeout_s=5)
    session = MqttSession(tls, name="tls unit")
    stop = asyncio.Event()
    seen: list = []
    async with client(broker, CONTROLLER_USER, files) as ctl:
        await ctl.subscribe("patrol/units/+/location", 1)
        task = asyncio.create_task(session.run(None, stop))
        try:
            await session.wait_connected(5)
            await session.publish("patrol/units/M01/location", json.dumps({"tls": True}).encode(), qos=1)
            await collect(ctl, seen, 0.5)
        finally:
            stop.set()
            await task
    assert seen == [("patrol/units/M01/location", b'{"tls": true}')]


def test_mosquitto_hash_format():
    """Our $7$ hash has mosquitto's layout: iterations, 12-byte salt, 64-byte PBKDF2-SHA512 digest."""
    parts = mosquitto_hash("secret", salt=b"0123456789ab").split("$")
    assert parts[:3] == ["", "7", "101"]
    import base64
    assert len(base64.b64decode(parts[3])) == 12 and len(base64.b64decode(parts[4])) == 64


def test_bad_layouts_are_refused(tmp_path):
    """Bad unit ids, reserved names and half-given certificates are refused with the reason."""
    with pytest.raises(DispatchError, match="not a valid id"):
        BrokerLayout(units=["M 01"])
    with pytest.raises(DispatchError, match="reserved"):
        BrokerLayout(units=[CONTROLLER_USER])
    with pytest.raises(DispatchError, match="both --cert and --key"):
        BrokerLayout(units=["M01"], cert_file=tmp_path / "x.crt")
    with pytest.raises(DispatchError, match="duplicate"):
        BrokerLayout(units=["M01", "M01"])
