"""The outbox delivers in order per topic, also when a publish fails on the way (real mosquitto).

A failed publish stops its topic: the failed message and the ones after it go out again, in order,
after a back-off. Retried alone, the failed one would overtake its successors: the broker would
retain a stale incident state, and an alert could reach a rider after its cancel.
"""
from __future__ import annotations

import asyncio
import json

import pytest

from dispatch.errors import DispatchError
from dispatch.schemas import AlertCancelMessage, dump
from tests.dispatch.conftest import make_incident, wait_until

pytestmark = pytest.mark.mosquitto


class FlakyLink:
    """Wraps the dispatcher's publish: the listed attempts on a topic fail, like a PUBACK lost in a
    link drop-out (1 = the first attempt on that topic)."""

    def __init__(self, session, failing: dict[str, set[int]]):
        self.session = session
        self.failing = failing
        self.attempts: dict[str, int] = {}
        self.sent: list[tuple[str, bytes]] = []
        self._publish = session.publish
        session.publish = self.publish

    async def publish(self, topic, payload, qos=1, retain=False, timeout_s=None):
        n = self.attempts[topic] = self.attempts.get(topic, 0) + 1
        if n in self.failing.get(topic, ()):
            raise DispatchError(f"publish to {topic} timed out (injected)")
        await self._publish(topic, payload, qos, retain, timeout_s)
        self.sent.append((topic, payload))


def incident_version(n: int) -> bytes:
    return json.dumps({"id": "fire-1", "version": n}).encode()


async def test_retained_incident_states_keep_their_order_after_a_failed_publish(rig):
    """Four versions of an incident, the second one's publish fails once: subscribers see 1,2,3,4
    and the broker retains version 4, not the stale version 2."""
    dispatcher = await rig.start_dispatcher()
    topic = "patrol/incidents/fire-1"
    link = FlakyLink(dispatcher.session, {topic: {2}})
    watcher = await rig.probe(topic)
    with dispatcher.journal.transaction():
        for n in (1, 2, 3, 4):
            dispatcher.journal.enqueue(topic, incident_version(n), qos=1, retain=True)
    dispatcher._wake_publisher()
    await wait_until(lambda: not dispatcher.journal.pending(1), 5, "the outbox to drain")
    await wait_until(lambda: len(watcher.get_bodies(topic)) >= 4, 3, "four incident versions")

    assert link.attempts[topic] == 5  # the failure was real and retried once
    assert [b["version"] for b in watcher.get_bodies(topic)] == [1, 2, 3, 4]
    late = await rig.probe(topic)  # a dashboard connecting now gets the broker's retained state
    await wait_until(lambda: late.get_bodies(topic), 3, "the retained incident state")
    assert late.get_bodies(topic) == [{"id": "fire-1", "version": 4}]


async def test_an_alert_never_reaches_a_rider_after_its_cancel(rig):
    """An alert's publish fails and its cancel is already queued: the rider gets the alert first
    and then stands down, instead of ignoring the cancel and showing a stale alert."""
    dispatcher = await rig.start_dispatcher(ack_timeout_s=30)
    unit = await rig.add_unit("M01", 150, 0)
    await rig.wait_units_known("M01")
    await rig.publish(make_incident("fire-2"))
    await wait_until(lambda: unit.shown, 5, "the first alert")  # the link works
    alerts = "patrol/units/M01/alerts"
    # Link trouble: the next alert's first attempt fails, and before the retry the controller
    # has already moved on and queued the cancel for it.
    FlakyLink(dispatcher.session, {alerts: {1}})
    first = unit.shown[0]
    second = first.model_copy(update={"alert_id": "fire-2.9-abcdef"})
    cancel = AlertCancelMessage(alert_id=second.alert_id, incident_id="fire-2", reason="reassigned", ts=0.0)
    with dispatcher.journal.transaction():
        dispatcher.journal.enqueue(alerts, dump(second), qos=1)
        dispatcher.journal.enqueue(alerts, dump(cancel), qos=1)
    dispatcher._wake_publisher()
    await wait_until(lambda: not dispatcher.journal.pending(1), 5, "the outbox to drain")
    await wait_until(lambda: len(unit.shown) == 2, 3, "the second alert")
    await asyncio.sleep(0.3)
    assert [c.alert_id for c in unit.cancelled] == [second.alert_id]  # it stood down
    assert unit.client.store.state(second.alert_id) == "cancelled"


async def test_a_topic_that_keeps_failing_is_retried_with_growing_back_off(rig):
    """A publish that fails again and again is retried with growing pauses, not in a tight loop."""
    dispatcher = await rig.start_dispatcher()  # rig: back-off from 0.1 s doubling up to 0.5 s
    topic = "patrol/incidents/fire-3"
    link = FlakyLink(dispatcher.session, {topic: {1, 2, 3, 4}})
    tried_at: list[float] = []
    publish = link.publish

    async def timed(topic_, *args, **kw):
        if topic_ == topic:
            tried_at.append(asyncio.get_running_loop().time())
        await publish(topic_, *args, **kw)

    dispatcher.session.publish = timed
    with dispatcher.journal.transaction():
        dispatcher.journal.enqueue(topic, incident_version(1), qos=1, retain=True)
    dispatcher._wake_publisher()
    await wait_until(lambda: not dispatcher.journal.pending(1), 5, "the outbox to drain")
    gaps = [b - a for a, b in zip(tried_at, tried_at[1:])]
    assert len(gaps) == 4
    assert gaps[2] > 1.6 * gaps[0] and gaps[3] >= gaps[2] * 0.9, gaps
