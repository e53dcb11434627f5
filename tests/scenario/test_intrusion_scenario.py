"""Zone intrusions in a whole patrol: a scenario's restricted zone reaches every drone's eyes, a
person walks into it at its scripted time, and the patrol reports and alerts it."""
import json

import pytest

from patrol import run_patrol
from runloop.scenario import load_scenario

pytestmark = [pytest.mark.mosquitto, pytest.mark.e2e]


async def test_intruder_in_restricted_zone_is_detected_and_alerted(mosquitto_broker, tmp_path):
    """danyang-intrusion: the person entering the substation at 20 s is detected inside the zone,
    placed within 15 m and alerted to a unit; the run passes its criteria."""
    scenario = load_scenario("danyang-intrusion").model_copy(update={"speedup": 20.0})
    report = await run_patrol(scenario, tmp_path, broker_url=mosquitto_broker.url, live=False)
    assert report["passed"], "\n".join(report["failures"])
    on_disk = json.loads((tmp_path / "report.json").read_text())
    (intrusion,) = on_disk["incidents"]
    assert intrusion["kind"] == "intrusion"
    assert intrusion["detected_s"] >= scenario.incidents[0].at_s
    assert intrusion["alerted_s"] is not None and intrusion["geolocation_error_m"] <= 15.0
