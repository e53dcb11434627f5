"""Alarm intake (patrol.alarm/1): an outside report at a place becomes a `reported` incident, a
drone is asked to hold over it, the best unit is alerted at once marked unconfirmed, and a
vision report nearby confirms it."""
from __future__ import annotations

import asyncio
import json

import aiomqtt
import pytest

from common.geo import offset
from common.values import IncidentKind
from dispatch.errors import PayloadError
from dispatch.rider import format_alert
from dispatch.schemas import AlarmMessage, DetectionMessage, parse
from tests.dispatch.conftest import ORIGIN, make_incident, wait_until

TOPIC = "patrol/alarms/callcentre"


def alarm_payload(**fields) -> bytes:
    lat, lon = offset(*ORIGIN, 0, 0)
    body = {"schema": "patrol.alarm/1", "id": "110-0001", "kind": "110-call", "lat": lat, "lon": lon,
            "priority": 1, "text": "smoke from a warehouse roof"}
    body.update(fields)
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


# ------------------------------------------------------------------------------ validation
def test_an_alarm_needs_an_id_a_kind_and_a_place():
    """A position or a grid cell; each bad field is named; unknown keys are refused."""
    ok = parse(AlarmMessage, alarm_payload(), TOPIC)
    assert ok.to_alarm("callcentre").incident_id == "callcentre.110-0001"
    by_grid = parse(AlarmMessage, alarm_payload(lat=..., lon=..., grid_id="DY-C0713"), TOPIC)
    assert by_grid.grid_id == "DY-C0713" and by_grid.lat is None
    cases = {
        "an alarm needs a place": alarm_payload(lat=..., lon=...),
        "lat and lon go together": alarm_payload(lon=...),
        "id: String should match pattern": alarm_payload(id="a/b#"),
        "kind: Field required": alarm_payload(kind=...),
        "priority: Input should be greater than or equal to 1": alarm_payload(priority=0),
        "lat: Input should be less than or equal to 90": alarm_payload(lat=132.0),
        "caller: Extra inputs are not permitted": alarm_payload(caller="Mrs Li"),
        "text: String should have at most 500 characters": alarm_payload(text="x" * 501),
    }
    for expected, payload in cases.items():
        with pytest.raises(PayloadError) as err:
            parse(AlarmMessage, payload, TOPIC)
        assert f"{TOPIC}: invalid AlarmMessage" in str(err.value) and expected in str(err.value), (expected, err.value)
    vision_says_reported = json.dumps({"schema": "patrol.detection/1", "state": "new", "incident": {
        "id": "D1-0001", "kind": "reported", "confidence": 0.9, "first_seen": 1.0}}).encode()
    with pytest.raises(PayloadError, match="a detection is never of kind reported"):
        parse(DetectionMessage, vision_says_reported, "patrol/detections/D1")


# ------------------------------------------------------------------------------ over MQTT
async def send_alarm(rig, payload: bytes, topic: str = TOPIC) -> None:
    async with aiomqtt.Client(rig.mosquitto.host, rig.mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5) as c:
        await c.publish(topic, payload, qos=1)


@pytest.mark.mosquitto
async def test_an_alarm_sends_a_drone_and_alerts_the_nearest_unit_unconfirmed(rig):
    """The alarm opens incident `callcentre.110-0001` (kind reported, its priority): a drone is
    asked at once, the nearer unit is alerted with "unconfirmed" and the caller's words; a
    vision fire 30 m away confirms it (linked, nobody alerted twice); the same alarm sent again
    and an alarm without a place change nothing; all of it survives a controller restart."""
    await rig.start_dispatcher(ack_timeout_s=10)
    probe = await rig.probe("patrol/incidents/+")
    near = await rig.add_unit("M01", 200, 0)
    far = await rig.add_unit("M02", 900, 0)
    await rig.wait_units_known("M01", "M02")

    await send_alarm(rig, alarm_payload())
    alert = (await wait_until(lambda: near.shown, 3, "M01 alerted to the alarm"))[0]
    assert alert.incident.id == "callcentre.110-0001" and alert.incident.kind == IncidentKind.REPORTED
    assert alert.unconfirmed and alert.text == "smoke from a warehouse roof" and alert.priority == 1
    assert rig.overwatch == ["callcentre.110-0001"]
    shown = format_alert(alert, None)
    assert "REPORTED  UNCONFIRMED" in shown and '"smoke from a warehouse roof"' in shown

    await rig.publish(make_incident("D1-0009", IncidentKind.FIRE, north_m=30))
    case = rig.dispatcher.cases["callcentre.110-0001"]
    await wait_until(lambda: "D1-0009" in case.linked, 3, "the fire linked to the alarm")
    assert not case.unconfirmed
    await send_alarm(rig, alarm_payload())
    await send_alarm(rig, alarm_payload(id="110-0002", lat=..., lon=..., grid_id="DY-C0713"))
    await wait_until(lambda: rig.dispatcher.stats.invalid == 1, 3, "the unplaceable alarm refused")
    assert "grid_id 'DY-C0713' is not a cell this controller knows" in rig.dispatcher.stats.last_invalid_reason
    await asyncio.sleep(0.3)
    assert len(near.shown) == 1 and far.shown == [] and set(rig.dispatcher.cases) == {"callcentre.110-0001"}
    record = await wait_until(lambda: [b for b in probe.get_bodies("incidents/callcentre.110-0001")
                                       if b["linked_reports"]], 3, "the retained record to show the confirmation")
    assert record[-1]["alarm"] == {"source": "callcentre", "id": "110-0001", "kind": "110-call",
                                   "text": "smoke from a warehouse roof"}
    await rig.stop_dispatcher()  # the alarm and its confirmation survive a controller restart
    restarted = await rig.start_dispatcher(ack_timeout_s=10)
    case = restarted.cases["callcentre.110-0001"]
    assert case.alarm.text == "smoke from a warehouse roof" and not case.unconfirmed and case.priority == 1


@pytest.mark.mosquitto
async def test_an_alarm_given_by_grid_cell_is_placed_at_the_cell(rig):
    """With the controller's grid lookup (a patrol run has one), a grid id is enough."""
    dispatcher = await rig.start_dispatcher(ack_timeout_s=10)
    cell_centre = offset(*ORIGIN, 100, 0)
    dispatcher.locate_grid = {"DY-C0713": cell_centre}.get
    unit = await rig.add_unit("M01", 0, 0)
    await rig.wait_units_known("M01")
    await send_alarm(rig, alarm_payload(lat=..., lon=..., grid_id="DY-C0713"))
    alert = (await wait_until(lambda: unit.shown, 3, "M01 alerted"))[0]
    assert (alert.incident.lat, alert.incident.lon) == pytest.approx(cell_centre)
    assert alert.incident.grid_id == "DY-C0713" and 95 < alert.distance_m < 105


# ------------------------------------------------------------------------------ the webhook
async def post_alarm(url: str, body: bytes, token: str | None = None, query: str = "") -> tuple[int, bytes]:
    """POST /alarms to the web view as an integration would; (status, body)."""
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(f"POST /alarms{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{auth}"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, answer = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), answer


@pytest.mark.mosquitto
async def test_the_webhook_needs_the_control_token(rig, monkeypatch):
    """POST /alarms on the run's web view: refused without a token (401), with the view token or
    a wrong one (403); with the control token a bad alarm is a 400 naming what is wrong, a good
    one opens the incident (201) and alerts the unit, and posting it again opens nothing (200)."""
    from types import SimpleNamespace

    from runloop import web
    from runloop.web import Permission, PlanLayer, WebOptions, start_web_view

    monkeypatch.setattr(web, "plan_layer", lambda *a: PlanLayer())
    await rig.start_dispatcher(ack_timeout_s=10)
    unit = await rig.add_unit("M01", 200, 0)
    await rig.wait_units_known("M01")
    recorded = []
    run = SimpleNamespace(clock=lambda: 12.0, plan=None, grids=None, dock=None, drones=None, recorder=None, world=None,
                          scenario=SimpleNamespace(name="webhook"), dispatcher=rig.dispatcher,
                          store=SimpleNamespace(add=lambda *a, **k: recorded.append((a, k))))
    view = await start_web_view(run, WebOptions("127.0.0.1", 0, token="view-tok", control_token="ctl-tok"))
    try:
        good = alarm_payload(id="W-1")
        for token, status in ((None, 401), ("view-tok", 403), ("ctl-to", 403)):
            assert (await post_alarm(view.url, good, token))[0] == status, token
        assert unit.shown == [] and rig.dispatcher.cases == {}
        status, why = await post_alarm(view.url, alarm_payload(id="W-2", lat=..., lon=...), "ctl-tok")
        assert status == 400 and b"an alarm needs a place" in why
        status, answer = await post_alarm(view.url, good, "ctl-tok", query="?source=citizen-app")
        assert status == 201 and json.loads(answer) == {"incident_id": "citizen-app.W-1", "opened": True}
        alert = (await wait_until(lambda: unit.shown, 3, "M01 alerted to the posted alarm"))[0]
        assert alert.incident.id == "citizen-app.W-1" and alert.unconfirmed
        status, answer = await post_alarm(view.url, good, "ctl-tok", query="?source=citizen-app")
        assert status == 200 and json.loads(answer)["opened"] is False
        assert [a[0][1] for a in recorded] == ["alarm_received", "alarm_received"]
    finally:
        await view.close()
    only_control = web.WebAccess().with_control_token("ctl-tok")
    assert only_control.granted(None) == frozenset({Permission.VIEW})  # loopback view stays open
    assert only_control.granted("ctl-tok") == frozenset(Permission)
