"""`patrol broker-config`: what its broker lets each login do, checked against a real mosquitto running
the generated files: the whole ACL matrix, one login per client id, TLS, loopback plaintext,
certificates kept across re-runs, secrets created 0600. One broker serves the whole module.
"""
from __future__ import annotations

import asyncio
import os
import re
import ssl
from pathlib import Path

import aiomqtt
import pytest

from dispatch.broker_config import (CONTROLLER_USER, OPERATOR_USER, BrokerLayout, generate_certs,
                                    mosquitto_hash, write_broker_config)
from dispatch.config import BrokerConfig
from dispatch.errors import DispatchError
from dispatch.rider import RiderClient, RiderStore
from tests.dispatch.conftest import wait_until
from tests.fixtures.broker import mosquitto_running, root_user_lines
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.mosquitto

P = "patrol"


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """(broker, layout, files): mosquitto on exactly what broker-config wrote (plain on loopback + TLS
    + WebSockets on the loopback interface)."""
    made = {}

    def config(port, workdir):
        layout = BrokerLayout(units=["M01", "M02"], drones=["D1"], port=port, tls_port=free_port(),
                              ws_port=free_port(), bind="127.0.0.1", run_as_root=bool(root_user_lines()))
        made.update(layout=layout, files=write_broker_config(layout, workdir / "broker"))
        return made["files"].config_path.read_text()

    with mosquitto_running(config) as broker:
        yield broker, made["layout"], made["files"]


def login(secured, user: str | None, client_id: str | None = None, **kw) -> aiomqtt.Client:
    broker, _, files = secured
    return aiomqtt.Client(broker.host, broker.port, username=user,
                          password=files.credentials[user] if user else None, identifier=client_id,
                          protocol=aiomqtt.ProtocolVersion.V5, timeout=3, **kw)


async def collect(c: aiomqtt.Client, into: list, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            async for m in c.messages:
                into.append((m.topic.value, bytes(m.payload)))
    except TimeoutError:
        pass


# Who may publish where: (login, topic, allowed). The controller, subscribed to everything, is the witness.
PUBLISH = [
    ("M01", f"{P}/units/M01/location", True),
    ("M01", f"{P}/units/M01/acks", True),
    ("M01", f"{P}/units/M01/status", True),
    ("M01", f"{P}/units/M02/location", False),
    ("M01", f"{P}/units/M02/acks", False),
    ("M01", f"{P}/units/M02/status", False),
    ("M01", f"{P}/units/M01/alerts", False),
    ("M01", f"{P}/units/M02/alerts", False),
    ("M01", f"{P}/detections/D1", False),
    ("M01", f"{P}/incidents/fire-9", False),
    ("M01", f"{P}/events", False),
    ("M01", f"{P}/escalations", False),
    ("M01", f"{P}/controller/status", False),
    ("M01", f"{P}/drones/D1/state", False),
    ("drone-D1", f"{P}/detections/D1", True),
    ("drone-D1", f"{P}/detections/D2", False),
    ("drone-D1", f"{P}/units/M01/alerts", False),
    ("drone-D1", f"{P}/units/M01/location", False),
    ("drone-D1", f"{P}/units/M01/acks", False),
    ("drone-D1", f"{P}/incidents/fire-9", False),
    ("drone-D1", f"{P}/workers/D1/status", True),  # its vision worker's health
    ("drone-D1", f"{P}/workers/D2/status", False),
    ("drone-D1", f"{P}/drones/D1/state", False),
    ("M01", f"{P}/workers/D1/status", False),
    (OPERATOR_USER, f"{P}/units/M01/alerts", False),
    (OPERATOR_USER, f"{P}/incidents/fire-9", False),
    # operator commands (send/recall a drone, dispatch a unit, false alarm, ...): the operator only
    (OPERATOR_USER, f"{P}/operator/commands", True),
    ("M01", f"{P}/operator/commands", False),
    ("drone-D1", f"{P}/operator/commands", False),
    (OPERATOR_USER, f"{P}/operator/results", False),
]

# Who may read what the controller (or a unit) publishes: topic -> the logins that must receive it.
READ = {
    f"{P}/units/M01/alerts": {"M01", OPERATOR_USER},
    f"{P}/units/M02/alerts": {"M02", OPERATOR_USER},
    f"{P}/units/M02/acks": {OPERATOR_USER},
    f"{P}/units/M02/location": {OPERATOR_USER},
    f"{P}/units/M02/status": {"M02", OPERATOR_USER},
    f"{P}/detections/D1": {OPERATOR_USER},
    f"{P}/events": {OPERATOR_USER},
    f"{P}/escalations": {OPERATOR_USER},
    f"{P}/incidents/fire-9": {"M01", "M02", OPERATOR_USER},
    f"{P}/controller/status": {"M01", "M02", "drone-D1", OPERATOR_USER},
    f"{P}/drones/D1/state": {"M01", "M02", "drone-D1", OPERATOR_USER},  # D1's worker takes its pose from it
    f"{P}/drones/D2/state": {"M01", "M02", OPERATOR_USER},
    f"{P}/workers/D1/status": {OPERATOR_USER},
    f"{P}/operator/results": {OPERATOR_USER},
}
READERS = ["M01", "M02", "drone-D1", OPERATOR_USER]


async def test_acl_matrix(secured):
    """Every login publishes and reads exactly what docs/mqtt-api.md's ACL table says, nothing more."""
    problems = []
    async with login(secured, CONTROLLER_USER) as ctl:
        await ctl.subscribe(f"{P}/#", 1)
        for user in {u for u, _, _ in PUBLISH}:
            async with login(secured, user) as c:
                for who, topic, _ in PUBLISH:
                    if who == user:
                        await c.publish(topic, f"from {user}".encode(), qos=1)
        seen: list = []
        await collect(ctl, seen, 0.5)
        for user, topic, allowed in PUBLISH:
            arrived = (topic, f"from {user}".encode()) in seen
            if arrived != allowed:
                problems.append(f"{user} publish {topic}: {'arrived' if arrived else 'refused'}")

        readers = {user: login(secured, user) for user in READERS}
        got: dict[str, list] = {user: [] for user in READERS}
        for user, c in readers.items():
            await c.__aenter__()
            await c.subscribe(f"{P}/#", 1)
        try:
            for topic in READ:
                await ctl.publish(topic, b"for readers", qos=1)  # not retained: the module shares a broker
            await asyncio.gather(*(collect(c, got[u], 0.5) for u, c in readers.items()))
        finally:
            for c in readers.values():
                await c.__aexit__(None, None, None)
    for topic, allowed in READ.items():
        for user in READERS:
            received = (topic, b"for readers") in got[user]
            if received != (user in allowed):
                problems.append(f"{user} read {topic}: {'received' if received else 'not received'}")
    assert problems == []


async def test_tls_listener_with_our_session(secured):
    """A unit logs in over mqtts:// with the generated CA (our MqttSession TLS path) and its location arrives."""
    from dispatch.mqtt import MqttSession

    broker, layout, files = secured
    tls = BrokerConfig(url=f"mqtts://127.0.0.1:{layout.tls_port}", username="M01", password=files.credentials["M01"],
                       ca_file=files.ca_file, connect_timeout_s=5)
    session = MqttSession(tls, name="tls unit")
    stop = asyncio.Event()
    seen: list = []
    async with login(secured, CONTROLLER_USER) as ctl:
        await ctl.subscribe(f"{P}/units/+/location", 1)
        task = asyncio.create_task(session.run(None, stop))
        try:
            await session.wait_connected(5)
            await session.publish(f"{P}/units/M01/location", b'{"tls": true}', qos=1)
            await collect(ctl, seen, 0.4)
        finally:
            stop.set()
            await task
    assert seen == [(f"{P}/units/M01/location", b'{"tls": true}')]


async def test_anonymous_and_wrong_password_are_refused(secured):
    broker, _, _ = secured
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(broker.host, broker.port, timeout=3):
            pass
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(broker.host, broker.port, username="M01", password="guess", timeout=3):
            pass


def login_ws(secured, user: str | None, password: str | None = None) -> aiomqtt.Client:
    """A login over the WebSockets listener, as the rider web app connects."""
    _, layout, files = secured
    return aiomqtt.Client("127.0.0.1", layout.ws_port, username=user,
                          password=password or (files.credentials[user] if user else None),
                          protocol=aiomqtt.ProtocolVersion.V5, timeout=3, transport="websockets")


async def test_websockets_listener_keeps_the_same_acls(secured):
    """Over WebSockets a unit reads its own alerts and not another unit's, publishes only its own
    acks; no login or a wrong password is refused."""
    seen_m01: list = []
    seen_ctl: list = []
    async with login(secured, CONTROLLER_USER) as ctl:
        await ctl.subscribe(f"{P}/units/+/acks", 1)
        async with login_ws(secured, "M01") as m01:
            await m01.subscribe(f"{P}/units/+/alerts", 1)
            await m01.subscribe(f"{P}/#", 1)
            await ctl.publish(f"{P}/units/M01/alerts", b"for M01", qos=1)
            await ctl.publish(f"{P}/units/M02/alerts", b"for M02", qos=1)
            await m01.publish(f"{P}/units/M01/acks", b"ack M01", qos=1)
            await m01.publish(f"{P}/units/M02/acks", b"ack as M02", qos=1)
            await asyncio.gather(collect(m01, seen_m01, 0.5), collect(ctl, seen_ctl, 0.5))
    assert (f"{P}/units/M01/alerts", b"for M01") in seen_m01
    assert not [m for m in seen_m01 if m[0] == f"{P}/units/M02/alerts"]
    assert seen_ctl == [(f"{P}/units/M01/acks", b"ack M01")]
    for user, password in ((None, None), ("M01", "guess")):
        with pytest.raises(aiomqtt.MqttError):
            async with login_ws(secured, user, password):
                pass


async def test_a_unit_cannot_knock_the_controller_off_with_its_client_id(secured):
    """M01 logging in with client id `patrol-controller` gets its own id; the controller stays connected."""
    seen: list = []
    async with login(secured, CONTROLLER_USER, client_id="patrol-controller") as ctl:
        await ctl.subscribe(f"{P}/units/+/location", 1)
        async with login(secured, "M01", client_id="patrol-controller") as intruder:
            await intruder.publish(f"{P}/units/M01/location", b"takeover?", qos=1)
            await collect(ctl, seen, 0.4)
        await ctl.publish(f"{P}/controller/status", b"still here", qos=1)  # raises if knocked off
    assert seen == [(f"{P}/units/M01/location", b"takeover?")]


async def test_a_unit_cannot_resume_another_units_session(secured, tmp_path):
    """M01 resuming `rider-M02`'s (and `M02`'s) persistent session gets nothing; M02's queued alert waits for M02."""
    broker, _, files = secured
    url = f"mqtt://{broker.host}:{broker.port}"
    m02 = RiderClient(BrokerConfig(url=url, username="M02", password=files.credentials["M02"]), "M02",
                      RiderStore(tmp_path / "m02.sqlite"))
    shown = []

    async def on_alert(alert):
        shown.append(alert)

    m02.on_alert = on_alert
    await m02.start(wait_s=5)
    await m02.stop(sign_off=False)  # out of coverage: the broker queues M02's alerts
    alert = (Path(__file__).parents[2] / "docs" / "mqtt-api.md").read_text()
    body = re.search(r'```json\n(\{"schema": "patrol.alert/1".*?)```', alert, re.S).group(1)
    body = body.replace('"unit_id": "M07"', '"unit_id": "M02"').encode()
    async with login(secured, CONTROLLER_USER) as ctl:
        await ctl.publish(f"{P}/units/M02/alerts", body, qos=1)
    stolen: list = []
    for client_id in ("rider-M02", "M02"):
        async with login(secured, "M01", client_id=client_id, clean_start=False) as thief:
            await collect(thief, stolen, 0.3)
    assert stolen == []
    await m02.start(wait_s=5)
    try:
        await wait_until(lambda: shown, 5, "M02's queued alert")
    finally:
        await m02.stop()
        m02.store.close()
    assert [a.unit_id for a in shown] == ["M02"]


async def test_tls_with_the_generated_ca_and_refused_with_another(secured, tmp_path):
    """The TLS listener serves the generated certificate: trusted with ca.crt, refused with a stranger's CA."""
    broker, layout, files = secured

    async def connect(cafile: Path) -> None:
        ctx = ssl.create_default_context(cafile=str(cafile))
        async with aiomqtt.Client("127.0.0.1", layout.tls_port, username="M01", password=files.credentials["M01"],
                                  tls_context=ctx, timeout=3) as c:
            await c.publish(f"{P}/units/M01/location", b"over tls", qos=1)

    await connect(files.ca_file)
    other_ca, _, _ = generate_certs(tmp_path / "other", "localhost")
    with pytest.raises(aiomqtt.MqttError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        await connect(other_ca)


def test_only_the_asked_listeners_are_opened(secured):
    """Mosquitto opens the loopback plaintext port and the TLS port, nothing else (no default 1883)."""
    broker, layout, _ = secured
    opened = {int(p) for p in re.findall(r"Opening ipv[46] listen socket on port (\d+)", broker.log_text())}
    assert opened == {layout.port, layout.tls_port}
    websockets = {int(p) for p in re.findall(r"Opening websockets listen socket on port (\d+)", broker.log_text())}
    assert websockets == {layout.ws_port}


def test_plaintext_stays_on_loopback_unless_asked(tmp_path):
    config = write_broker_config(BrokerLayout(units=["M01"], tls_port=0), tmp_path / "a").config_path.read_text()
    assert re.findall(r"^listener (\d+) (\S+)", config, re.M) == [("1883", "127.0.0.1"), ("9001", "lo")]
    with pytest.raises(DispatchError, match="in clear.*--insecure-plain-on-network"):
        BrokerLayout(units=["M01"], plain_bind="0.0.0.0")
    opened = BrokerLayout(units=["M01"], plain_bind="0.0.0.0", plain_on_network=True, tls_port=0, ws_port=0)
    config = write_broker_config(opened, tmp_path / "b").config_path.read_text()
    assert re.findall(r"^listener (\d+) (\S+)", config, re.M) == [("1883", "0.0.0.0")]


def test_websockets_leave_the_machine_only_with_tls(tmp_path):
    """The rider app's listener: on the loopback interface plain ws://; on a network interface
    with the server certificate (wss://); an address instead of an interface name is refused
    (libwebsockets would bind it on every interface)."""
    config = write_broker_config(BrokerLayout(units=["M01"], tls_port=0), tmp_path / "a").config_path.read_text()
    ws = config.split("listener 9001 lo\n", 1)[1]
    assert ws.startswith("protocol websockets\nuse_username_as_clientid true") and "certfile" not in ws
    config = write_broker_config(BrokerLayout(units=["M01"], tls_port=0, ws_interface="wlan0"),
                                 tmp_path / "b").config_path.read_text()
    ws = config.split("listener 9001 wlan0\n", 1)[1]
    assert "protocol websockets" in ws and "certfile " in ws and "keyfile " in ws
    with pytest.raises(DispatchError, match="interface name"):
        BrokerLayout(units=["M01"], ws_interface="0.0.0.0")
    with pytest.raises(DispatchError, match="also another listener"):
        BrokerLayout(units=["M01"], ws_port=1883)


def test_certificates_are_kept_on_rerun_and_rotated_only_when_asked(tmp_path):
    layout = BrokerLayout(units=["M01"])
    certs = tmp_path / "certs"

    def read() -> tuple[bytes, bytes]:
        return (certs / "ca.crt").read_bytes(), (certs / "server.crt").read_bytes()

    first = write_broker_config(layout, tmp_path)
    ca, server = read()
    again = write_broker_config(BrokerLayout(units=["M01", "M02"]), tmp_path)
    assert read() == (ca, server)  # the riders' --ca-file keeps working
    assert again.credentials["M01"] == first.credentials["M01"]
    write_broker_config(BrokerLayout(units=["M01"], rotate="server"), tmp_path)
    assert read()[0] == ca and read()[1] != server
    write_broker_config(BrokerLayout(units=["M01"], rotate="ca"), tmp_path)
    assert read()[0] != ca


def test_secrets_are_created_private_without_chmod(tmp_path, monkeypatch):
    """credentials.yaml, passwd and the keys are 0600 from creation (even with umask 000): no window
    in which another user could read them before a chmod."""
    def no_chmod(*args, **kwargs):
        raise AssertionError("secret chmod-ed after it was written")

    monkeypatch.setattr(os, "chmod", no_chmod)
    old = os.umask(0)
    try:
        files = write_broker_config(BrokerLayout(units=["M01"]), tmp_path)
    finally:
        os.umask(old)
    for path in (files.credentials_path, files.password_path, tmp_path / "certs" / "ca.key",
                 tmp_path / "certs" / "server.key"):
        assert oct(path.stat().st_mode & 0o777) == oct(0o600), path.name


def test_mosquitto_hash_format():
    """Our $7$ hash has mosquitto's layout: iterations, 12-byte salt, 64-byte PBKDF2-SHA512 digest."""
    import base64

    parts = mosquitto_hash("secret", salt=b"0123456789ab").split("$")
    assert parts[:3] == ["", "7", "101"]
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


def test_a_unit_named_like_a_drone_login_is_refused():
    with pytest.raises(DispatchError, match="drone-D1.*share a login with a drone"):
        BrokerLayout(units=["drone-D1"], drones=["D1"])


async def test_every_client_works_on_its_own_login(secured, tmp_path):
    """The controller, a drone's vision worker and simulated riders each log in as themselves on the
    secured broker (client id = login): an incident reaches the nearest unit, which accepts it."""
    from common.values import IncidentEvent, IncidentState
    from dispatch.config import DispatchConfig
    from dispatch.controller import Dispatcher
    from dispatch.publisher import DetectionPublisher
    from sim.riders import RiderFleet, RiderSimConfig
    from tests.dispatch.conftest import ORIGIN, make_incident

    broker, _, files = secured
    url = f"mqtt://{broker.host}:{broker.port}"

    def as_user(user: str) -> BrokerConfig:
        return BrokerConfig(url=url, username=user, password=files.credentials[user], reconnect_min_s=0.1)

    dispatcher = Dispatcher(as_user(CONTROLLER_USER), DispatchConfig(journal_path=tmp_path / "j.sqlite"))
    fleet = RiderFleet(BrokerConfig(url=url), [("M01", ORIGIN[0] + 0.001, ORIGIN[1]), ("M02", ORIGIN[0] + 0.02, ORIGIN[1])],
                       tmp_path, RiderSimConfig(accept_delay_s=0.0, on_scene_s=60), credentials=files.credentials)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(dispatcher.run(stop)), asyncio.create_task(fleet.run(stop))]
    try:
        await dispatcher.session.wait_connected(5)
        assert dispatcher.session.client_id == CONTROLLER_USER
        assert [r.client.session.client_id for r in fleet.riders] == ["M01", "M02"]
        await wait_until(lambda: "M01" in dispatcher.registry and "M02" in dispatcher.registry, 5, "both units known")
        async with DetectionPublisher(as_user("drone-D1")) as vision:
            await vision.publish(IncidentEvent(IncidentState.NEW, make_incident("fire-secure", drone_id="D1")))
        await wait_until(lambda: dispatcher.cases.get("fire-secure") and dispatcher.cases["fire-secure"].status == "accepted",
                         5, "the incident accepted")
        assert dispatcher.cases["fire-secure"].unit_id == "M01"
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
