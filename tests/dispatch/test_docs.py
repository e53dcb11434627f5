"""docs/mqtt-api.md stays true: every example payload validates against the schema it shows."""
from __future__ import annotations

import json
import re
from pathlib import Path

from dispatch import schemas

DOC = Path(__file__).resolve().parents[2] / "docs" / "mqtt-api.md"
MODELS = {
    "patrol.detection/1": schemas.DetectionMessage,
    "patrol.presence/1": schemas.PresenceMessage,
    "patrol.alert/1": schemas.AlertMessage,
    "patrol.alert-cancel/1": schemas.AlertCancelMessage,
    "patrol.ack/1": schemas.AckMessage,
    "patrol.incident/1": schemas.IncidentRecord,
    "patrol.event/1": schemas.EventMessage,
    "patrol.escalation/1": schemas.EscalationMessage,
    "patrol.drone-state/1": schemas.DroneStateMessage,
    "patrol.controller/1": schemas.ControllerStatusMessage,
    "patrol.alarm/1": schemas.AlarmMessage,
    "patrol.worker-status/1": schemas.WorkerStatusMessage,
}


def get_examples() -> list[dict]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", DOC.read_text(), re.S)]


def test_every_doc_example_validates():
    """Each JSON example in the API doc parses with the model its schema (or _type) names."""
    examples = get_examples()
    assert len(examples) >= 10
    names = set()
    for example in examples:
        name = example.get("schema") or example.get("_type")
        names.add(name)
        model = MODELS.get(name, schemas.LocationMessage if name == "location" else None)
        assert model is not None, f"doc example with unknown schema {name!r}"
        schemas.parse(model, json.dumps(example).encode(), f"docs example {name}")
    assert set(MODELS) | {"location"} == names  # every schema is documented with an example


def test_every_topic_is_documented():
    """Each topic the Topics helper can build appears in the doc's topic table."""
    from dispatch.topics import Topics

    t = Topics()
    text = DOC.read_text()
    for topic in (t.detections("{drone_id}"), t.unit_location("{unit_id}"), t.unit_status("{unit_id}"),
                  t.unit_alerts("{unit_id}"), t.unit_acks("{unit_id}"), t.events, t.incident("{incident_id}"),
                  t.escalations, t.drone_state("{drone_id}"), t.controller_status, t.alarms("{source}"),
                  t.worker_status("{drone_id}")):
        assert f"`{topic}`" in text, topic
