"""Assignment procedures: nearest unit, ack timeout, decline, escalation, priority, arrival."""
from __future__ import annotations

import pytest

import asyncio

from common.values import IncidentKind, IncidentState
from tests.dispatch.conftest import make_incident, wait_until

pytestmark = pytest.mark.mosquitto  # needs the real broker binary


async def test_nearest_available_unit_gets_the_alert(rig):
    """Three units 200 m, 800 m and 1.5 km away: the 200 m one is alerted, the others hear nothing."""
    await rig.start_dispatcher()
    near = await rig.add_unit("M01", 200, 0)
    mid = await rig.add_unit("M02", 0, 800)
    far = await rig.add_unit("M03", -1500, 0)
    await rig.wait_units_known("M01", "M02", "M03")

    await rig.publish(make_incident("fire-1"))
    await wait_until(lambda: near.shown, 3, "M01 to be shown the alert")
    await asyncio.sleep(0.3)

    alert = near.shown[0]
    assert alert.incident.id == "fire-1"
    assert 190 < alert.distance_m < 210
    assert 170 < alert.bearing_deg < 190  # the unit is north of the fire: ride south
    assert alert.expires_at - alert.issued_at == pytest.approx(rig.dispatcher.config.ack_timeout_s)
    assert mid.shown == [] and far.shown == []


async def test_unanswered_alert_escalates_to_next_unit(rig):
    """The nearest unit does not answer within the ack timeout: the next nearest is alerted, the first stood down."""
    await rig.start_dispatcher(ack_timeout_s=1.0)
    silent = await rig.add_unit("M01", 100, 0)
    second = await rig.add_unit("M02", 600, 0)
    await rig.wait_units_known("M01", "M02")

    await rig.publish(make_incident("crowd-1", IncidentKind.CROWD))
    await wait_until(lambda: silent.shown, 3, "M01 alerted first")
    assert second.shown == []
    await wait_until(lambda: second.shown, 4, "M02 alerted after M01's timeout")
    await wait_until(lambda: silent.cancelled, 2, "M01 told to stand down")
    assert silent.cancelled[0].alert_id == silent.shown[0].alert_id
    assert second.shown[0].incident.id == "crowd-1"
    assert second.shown[0].alert_id != silent.shown[0].alert_id


async def test_decline_reassigns_to_next_unit(rig):
    """The nearest unit declines: the incident goes at once to the next unit, never back to the decliner."""
    await rig.start_dispatcher(ack_timeout_s=10)
    first = await rig.add_unit("M01", 100, 0)
    second = await rig.add_unit("M02", 400, 0)
    await rig.wait_units_known("M01", "M02")

    await rig.publish(make_incident("car-1", IncidentKind.STOPPED_VEHICLE))
    await wait_until(lambda: first.shown, 3, "M01 alerted")
    await first.client.ack(first.shown[0].alert_id, "decline")
    await wait_until(lambda: second.shown, 2, "M02 alerted after the decline (well before the 10 s timeout)")
    await second.client.ack(second.shown[0].alert_id, "decline")
    await wait_until(lambda: rig.get_case_status("car-1") == "escalated", 3, "escalation once all declined")
    assert len(first.shown) == 1


async def test_no_unit_escalates_and_retries(rig):
    """No unit is known: an escalation is published and repeated; a unit coming on duty then gets the alert."""
    await rig.start_dispatcher(escalation_retry_s=0.5)
    probe = await rig.probe("patrol/escalations")
    await rig.publish(make_incident("intrusion-1", IncidentKind.INTRUSION))
    await wait_until(lambda: len(probe.get_bodies("escalations")) >= 2, 4, "two escalation rounds")
    first, second = probe.get_bodies("escalations")[:2]
    assert first["incident"]["id"] == "intrusion-1" and first["round"] == 1 and second["round"] == 2
    assert "no units" in first["reason"]

    unit = await rig.add_unit("M09", 300, 300)
    await wait_until(lambda: unit.shown, 4, "the new unit to get the escalated incident")


async def test_escalation_says_why_each_unit_cannot_go(rig):
    """Units exist but none can go: the escalation names each one and why (busy, gone silent)."""
    await rig.start_dispatcher(escalation_retry_s=0.5, unit_silence_s=1.0)
    probe = await rig.probe("patrol/escalations")
    busy = await rig.add_unit("M01", 100, 0, send_location=False)
    quiet = await rig.add_unit("M02", 200, 0)
    busy.send_location(status="busy")
    await rig.wait_units_known("M01", "M02")
    await asyncio.sleep(1.2)  # M02 says nothing more: silent past unit_silence_s
    busy.send_location(status="busy")
    await rig.publish(make_incident("fire-3"))
    await wait_until(lambda: probe.get_bodies("escalations"), 3, "an escalation")
    reason = probe.get_bodies("escalations")[0]["reason"]
    assert "M01 busy" in reason and "M02 silent" in reason, reason
    assert busy.shown == [] and quiet.shown == []


async def test_fire_gets_the_only_unit_before_a_stopped_car(rig):
    """Two incidents, one free unit: the fire (priority 1) is served first even though the car is closer."""
    await rig.start_dispatcher(ack_timeout_s=10)
    d = rig.dispatcher
    # Both incidents arrive before any unit exists, so they wait together.
    await rig.publish(make_incident("car-9", IncidentKind.STOPPED_VEHICLE, north_m=50))
    await rig.publish(make_incident("fire-9", IncidentKind.FIRE, north_m=900))
    await wait_until(lambda: {"car-9", "fire-9"} <= set(d.cases), 3, "both incidents open")
    unit = await rig.add_unit("M01", 0, 0)
    await wait_until(lambda: unit.shown, 3, "the unit to be alerted")
    await asyncio.sleep(0.5)
    assert [a.incident.id for a in unit.shown] == ["fire-9"]
    assert d.cases["car-9"].status == "escalated"


async def test_accept_arrive_resolve_releases_drone_and_closes(rig):
    """Accept, ride in (arrival detected by position), resolve: drone held then released, incident closed."""
    await rig.start_dispatcher()
    probe = await rig.probe("patrol/events", "patrol/incidents/+")
    unit = await rig.add_unit("M01", 500, 0)
    await rig.wait_units_known("M01")
    await rig.publish(make_incident("fire-2"))
    await wait_until(lambda: unit.shown, 3, "alert shown")
    assert rig.overwatch == ["fire-2"]
    await unit.client.ack(unit.shown[0].alert_id, "accept")
    await wait_until(lambda: rig.get_case_status("fire-2") == "accepted", 3, "accepted")
    unit.north_m = 20  # within the 40 m arrive radius
    unit.send_location(status="busy")
    await wait_until(lambda: rig.released, 3, "drone release on arrival")
    assert rig.released == [("fire-2", "arrived")]
    await unit.client.ack(unit.shown[0].alert_id, "resolved")
    await wait_until(lambda: "fire-2" not in rig.dispatcher.cases, 3, "incident closed")
    await wait_until(lambda: any(b and b.get("type") == "end" for b in probe.get_bodies("events")), 3, "end event")
    statuses = [b["after"]["status"] for b in probe.get_bodies("events")]
    assert statuses[0] == "pending" and statuses[-1] == "resolved"
    assert {"alerting", "accepted", "arrived"} <= set(statuses)
    retained = probe.get_bodies("incidents/fire-2")[-1]
    assert retained["closed"] is True and retained["status"] == "resolved"


async def test_incident_ending_before_accept_stands_unit_down(rig):
    """Vision says the stopped car is gone while the alert is pending: unit stood down, drone released."""
    await rig.start_dispatcher(ack_timeout_s=10)
    unit = await rig.add_unit("M01", 100, 0)
    await rig.wait_units_known("M01")
    inc = make_incident("car-3", IncidentKind.STOPPED_VEHICLE)
    await rig.publish(inc)
    await wait_until(lambda: unit.shown, 3, "alert shown")
    await rig.publish(inc, IncidentState.END)
    await wait_until(lambda: unit.cancelled, 3, "stand-down")
    assert rig.released == [("car-3", "ended")]


async def test_closed_incident_retained_state_is_cleared_later(rig):
    """A resolved incident stays retained for closed_retain_s, then disappears from the broker."""
    await rig.start_dispatcher(closed_retain_s=0.6)
    unit = await rig.add_unit("M01", 100, 0)
    await rig.wait_units_known("M01")
    await rig.publish(make_incident("fire-old"))
    await wait_until(lambda: unit.shown, 3, "alert shown")
    await unit.client.ack(unit.shown[0].alert_id, "resolved")
    await wait_until(lambda: "fire-old" not in rig.dispatcher.cases, 3, "closed")
    early = await rig.probe("patrol/incidents/+")
    await wait_until(lambda: early.get_bodies("fire-old"), 2, "the retained closed state")
    await asyncio.sleep(1.5)
    late = await rig.probe("patrol/incidents/+")
    await asyncio.sleep(0.3)
    assert late.get_bodies("fire-old") == []
