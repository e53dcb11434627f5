"""One incident seen twice (two drones, or vision losing and re-finding it) is dispatched once."""
from __future__ import annotations

import pytest

import asyncio

from common.values import IncidentKind, IncidentState
from tests.dispatch.conftest import make_incident, wait_until

pytestmark = pytest.mark.mosquitto  # needs the real broker binary


async def test_second_drone_reporting_the_same_fire_alerts_nobody_twice(rig):
    """D1 and D2 both see a fire, their fixes 25 m apart: one alert, D2's report linked to D1's."""
    await rig.start_dispatcher(ack_timeout_s=10)
    probe = await rig.probe("patrol/incidents/+")
    near = await rig.add_unit("M01", 100, 0)
    other = await rig.add_unit("M02", 300, 0)
    await rig.wait_units_known("M01", "M02")

    await rig.publish(make_incident("D1-0001", drone_id="D1"))
    await wait_until(lambda: near.shown, 3, "M01 alerted to D1's fire")
    await rig.publish(make_incident("D2-0001", north_m=25, drone_id="D2"))
    await wait_until(lambda: "D2-0001" in rig.dispatcher.cases["D1-0001"].linked, 3, "D2's report linked")
    await asyncio.sleep(0.5)
    assert len(near.shown) == 1 and other.shown == []
    assert set(rig.dispatcher.cases) == {"D1-0001"}
    await wait_until(lambda: probe.get_bodies("incidents/D1-0001")
                     and probe.get_bodies("incidents/D1-0001")[-1]["linked_reports"] == {"D2-0001": "new"},
                     3, "the retained incident to list the linked report")
    assert probe.get_bodies("incidents/D2-0001") == []


async def test_reports_of_the_same_kind_farther_apart_are_separate_incidents(rig):
    """Two stopped cars 40 m apart are two incidents (the car radius is 15 m): two units go."""
    await rig.start_dispatcher(ack_timeout_s=10)
    first = await rig.add_unit("M01", 100, 0)
    second = await rig.add_unit("M02", 150, 0)
    await rig.wait_units_known("M01", "M02")
    await rig.publish(make_incident("D1-0002", IncidentKind.STOPPED_VEHICLE))
    await wait_until(lambda: first.shown or second.shown, 3, "the first car alerted")
    await rig.publish(make_incident("D1-0003", IncidentKind.STOPPED_VEHICLE, north_m=40))
    await wait_until(lambda: first.shown and second.shown, 3, "the second car alerted to the other unit")
    assert {first.shown[0].incident.id, second.shown[0].incident.id} == {"D1-0002", "D1-0003"}


async def test_incident_ends_only_when_every_report_of_it_has_ended(rig):
    """Before anyone accepts, D1 loses sight of the car but D2 still sees it: the alert stands.
    When D2's report ends too, the unit is stood down and the incident closes as ended."""
    await rig.start_dispatcher(ack_timeout_s=20)
    unit = await rig.add_unit("M01", 100, 0)
    await rig.wait_units_known("M01")
    car_d1 = make_incident("D1-0004", IncidentKind.STOPPED_VEHICLE, drone_id="D1")
    car_d2 = make_incident("D2-0004", IncidentKind.STOPPED_VEHICLE, north_m=6, drone_id="D2")
    await rig.publish(car_d1)
    await wait_until(lambda: unit.shown, 3, "M01 alerted")
    await rig.publish(car_d2)
    await wait_until(lambda: "D2-0004" in rig.dispatcher.cases["D1-0004"].linked, 3, "D2's report linked")

    await rig.publish(car_d1, IncidentState.END)
    await wait_until(lambda: rig.dispatcher.cases["D1-0004"].vision_state == IncidentState.END, 3, "D1's end")
    await asyncio.sleep(0.3)
    assert rig.get_case_status("D1-0004") == "alerting" and unit.cancelled == []

    await rig.publish(car_d2, IncidentState.END)
    await wait_until(lambda: unit.cancelled, 3, "M01 stood down once no drone sees the car")
    assert "D1-0004" not in rig.dispatcher.cases
    assert rig.dispatcher.journal.get_incident("D1-0004")["status"] == "ended"


async def test_linked_report_stays_folded_across_a_controller_restart(rig):
    """The controller restarts between two detections of the linked report: still no second incident."""
    await rig.start_dispatcher(ack_timeout_s=20)
    unit = await rig.add_unit("M01", 100, 0)
    await rig.wait_units_known("M01")
    await rig.publish(make_incident("D1-0005"))
    await wait_until(lambda: unit.shown, 3, "M01 alerted")
    await rig.publish(make_incident("D2-0005", east_m=30, drone_id="D2"))
    await wait_until(lambda: "D2-0005" in rig.dispatcher.cases["D1-0005"].linked, 3, "D2's report linked")

    await rig.stop_dispatcher()
    await rig.start_dispatcher(ack_timeout_s=20)
    assert rig.dispatcher.cases["D1-0005"].linked == {"D2-0005": IncidentState.NEW}
    await rig.publish(make_incident("D2-0005", east_m=31, drone_id="D2"), IncidentState.UPDATE)
    await asyncio.sleep(0.5)
    assert set(rig.dispatcher.cases) == {"D1-0005"}
    assert len({a.incident.id for a in unit.shown}) == 1
