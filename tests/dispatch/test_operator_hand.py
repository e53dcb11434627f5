"""The operator's hand on the dispatcher (runloop/operator.py's dispatch_unit and
close_false_alarm): the chosen unit is alerted and the one before stood down; a false alarm
stands its unit down; what cannot be done is refused naming why, and nothing changes."""
from __future__ import annotations

import pytest

from dispatch.errors import PayloadError
from tests.dispatch.conftest import make_incident, wait_until

pytestmark = pytest.mark.mosquitto  # needs the real broker binary


async def test_the_operator_sends_another_unit_then_closes_it_as_a_false_alarm(rig):
    await rig.start_dispatcher(ack_timeout_s=30)
    near = await rig.add_unit("M01", 100, 0)
    far = await rig.add_unit("M02", 900, 0)
    await rig.wait_units_known("M01", "M02")
    await rig.publish(make_incident("fire-1"))
    await wait_until(lambda: near.shown, 3, "M01 (nearest) alerted")

    detail = rig.dispatcher.assign_unit("fire-1", "M02")
    assert detail.startswith("M02 alerted for fire-1 (900 m")
    await wait_until(lambda: far.shown, 3, "M02 alerted on the operator's word")
    await wait_until(lambda: near.cancelled, 3, "M01 stood down")
    assert near.cancelled[0].reason == "reassigned by the operator"
    assert rig.dispatcher.cases["fire-1"].unit_id == "M02"

    with pytest.raises(PayloadError, match="unit M02 already has fire-1"):
        rig.dispatcher.assign_unit("fire-1", "M02")
    with pytest.raises(PayloadError, match=r"no unit 'M9' \(units known: M01, M02\)"):
        rig.dispatcher.assign_unit("fire-1", "M9")

    assert rig.dispatcher.close_false_alarm("fire-1") == "fire-1 closed as a false alarm; M02 stood down"
    await wait_until(lambda: far.cancelled, 3, "M02 stood down")
    assert far.cancelled[0].reason == "closed by the operator as a false alarm"
    assert rig.dispatcher.journal.incident_exists("fire-1") and "fire-1" not in rig.dispatcher.cases
    with pytest.raises(PayloadError, match="incident fire-1 is already closed"):
        rig.dispatcher.close_false_alarm("fire-1")
    with pytest.raises(PayloadError, match="no incident 'fire-9'"):
        rig.dispatcher.assign_unit("fire-9", "M01")
    assert len(near.shown) == 1  # nobody alerted again for a closed incident
