"""What crossed the broker, into the event store: alerts, cancels, acks, incident changes,
escalations and unit locations, as any dashboard would see them (a persistent QoS 1 session
under its own client id, so a broker restart loses nothing it was sent).

Also wraps each simulated rider's alert callback, so "alert received by its unit" is recorded
where it happens (for the report's no-alert-lost check).
"""
from __future__ import annotations

import base64
import json
import logging

from runloop.clock import ScenarioClock
from runloop.eventstore import EventStore

log = logging.getLogger(__name__)


class Recorder:
    def __init__(self, broker, store: EventStore, clock: ScenarioClock, topic_prefix: str = "patrol"):
        from dispatch.mqtt import MqttSession

        self.store = store
        self.clock = clock
        self.prefix = topic_prefix
        self.session = MqttSession(broker, client_id="patrol-run-recorder", persistent=True,
                                   subscriptions=[(f"{topic_prefix}/units/+/alerts", 1),
                                                  (f"{topic_prefix}/units/+/acks", 1),
                                                  (f"{topic_prefix}/units/+/location", 0),
                                                  (f"{topic_prefix}/events", 1),
                                                  (f"{topic_prefix}/escalations", 1)],
                                   name="run-recorder")
        self.unit_positions: dict[str, tuple[float, float, str]] = {}
        for stale in (store.path.parent / "snapshots").glob("*.jpg"):  # a previous run's, same ids
            stale.unlink()
        self.incidents: dict[str, dict] = {}

    async def run(self, stop) -> None:
        await self.session.run(self._handle, stop)

    async def _handle(self, message) -> None:
        topic = str(message.topic)
        try:
            payload = json.loads(message.payload)
        except (ValueError, TypeError):
            return
        t = self.clock()
        parts = topic[len(self.prefix) + 1:].split("/")
        if parts[0] == "units" and len(parts) == 3:
            unit, what = parts[1], parts[2]
            if what == "location":
                status = payload.get("status", "available")
                self.unit_positions[unit] = (payload.get("lat"), payload.get("lon"), status)
                self.store.add_unit(unit, t, payload.get("lat"), payload.get("lon"), status)
            elif what == "alerts":
                if payload.get("schema") == "patrol.alert/1":
                    self.store.add(t, "alert", payload["alert_id"], unit_id=unit,
                                   incident_id=payload["incident"]["id"], distance_m=payload.get("distance_m"),
                                   eta_wall_s=payload.get("eta_s"))
                    self._keep_snapshot(payload["incident"]["id"], payload.get("snapshot"))
                else:
                    self.store.add(t, "alert_cancel", payload.get("alert_id", ""), unit_id=unit,
                                   reason=payload.get("reason"))
            elif what == "acks":
                self.store.add(t, "ack", payload.get("alert_id", ""), unit_id=unit, action=payload.get("action"))
        elif parts[0] == "events":
            after = payload.get("after") or {}
            inc = after.get("incident") or {}
            if inc.get("id"):
                self.incidents[inc["id"]] = after
                self.store.add(t, "incident_status", inc["id"], status=after.get("status"),
                               unit_id=after.get("unit_id"), alert_id=after.get("alert_id"), kind=inc.get("kind"),
                               linked=sorted(after.get("linked_reports") or {}))
        elif parts[0] == "escalations":
            self.store.add(t, "escalation", (payload.get("incident") or {}).get("id", ""),
                           reason=payload.get("reason"))

    def _keep_snapshot(self, incident_id: str, snapshot_b64: str | None) -> None:
        """The first alert snapshot of each incident, as RUN_DIR/snapshots/<id>.jpg for the report."""
        from runloop.report import snapshot_name

        if not snapshot_b64:
            return
        path = self.store.path.parent / "snapshots" / f"{snapshot_name(incident_id)}.jpg"
        if path.exists():
            return
        try:
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(base64.b64decode(snapshot_b64, validate=True))
        except (OSError, ValueError) as exc:  # a missing picture must not stop the record
            log.warning("alert snapshot of %s not kept: %s", incident_id, exc)


def record_rider_receipts(fleet, store: EventStore, clock: ScenarioClock) -> None:
    """Record each alert the moment a simulated unit's app takes it (shown once per alert id)."""
    for rider in fleet.riders:
        inner = rider.client.on_alert

        async def on_alert(alert, inner=inner, unit=rider.unit_id):
            store.add(clock(), "alert_received", alert.alert_id, unit_id=unit, incident_id=alert.incident.id)
            if inner:
                await inner(alert)
        rider.client.on_alert = on_alert
