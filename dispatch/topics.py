"""MQTT topic names, built from one configurable prefix (default "patrol").

The full list with directions, QoS and schemas is docs/mqtt-api.md. Ids that appear in topics
(units, drones, incidents) must not contain MQTT separators or wildcards; `check_id` enforces it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from dispatch.errors import DispatchError

ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
_ID_RE = re.compile(ID_PATTERN)


def check_id(value: str, what: str) -> str:
    """Return value if it is a usable topic level id, else raise DispatchError naming `what`."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise DispatchError(f"{what} {value!r} is not a valid id (1-64 of A-Z a-z 0-9 _ . : -)")
    return value


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str = "patrol"

    def __post_init__(self) -> None:
        if not self.prefix or any(c in self.prefix for c in "+#") or self.prefix.startswith("/") \
                or self.prefix.endswith("/"):
            raise DispatchError(f"topic prefix {self.prefix!r} must be non-empty, without + # or edge slashes")

    # vision -> controller
    def detections(self, drone_id: str) -> str:
        return f"{self.prefix}/detections/{drone_id}"

    @property
    def detections_all(self) -> str:
        return f"{self.prefix}/detections/#"

    def worker_status(self, drone_id: str) -> str:
        """A vision worker's retained health (patrol.worker-status/1)."""
        return f"{self.prefix}/workers/{drone_id}/status"

    @property
    def worker_status_all(self) -> str:
        return f"{self.prefix}/workers/+/status"

    # outside -> controller: alarms (a 110 call, a sensor) from a named source
    def alarms(self, source: str) -> str:
        return f"{self.prefix}/alarms/{source}"

    @property
    def alarms_all(self) -> str:
        return f"{self.prefix}/alarms/+"

    # units
    def unit_location(self, unit_id: str) -> str:
        return f"{self.prefix}/units/{unit_id}/location"

    def unit_status(self, unit_id: str) -> str:
        return f"{self.prefix}/units/{unit_id}/status"

    def unit_alerts(self, unit_id: str) -> str:
        return f"{self.prefix}/units/{unit_id}/alerts"

    def unit_acks(self, unit_id: str) -> str:
        return f"{self.prefix}/units/{unit_id}/acks"

    @property
    def unit_locations_all(self) -> str:
        return f"{self.prefix}/units/+/location"

    @property
    def unit_status_all(self) -> str:
        return f"{self.prefix}/units/+/status"

    @property
    def unit_acks_all(self) -> str:
        return f"{self.prefix}/units/+/acks"

    # controller -> everyone
    @property
    def events(self) -> str:
        return f"{self.prefix}/events"

    def incident(self, incident_id: str) -> str:
        return f"{self.prefix}/incidents/{incident_id}"

    @property
    def incidents_all(self) -> str:
        return f"{self.prefix}/incidents/+"

    def drone_state(self, drone_id: str) -> str:
        return f"{self.prefix}/drones/{drone_id}/state"

    @property
    def controller_status(self) -> str:
        return f"{self.prefix}/controller/status"

    @property
    def escalations(self) -> str:
        return f"{self.prefix}/escalations"

    def parse(self, topic: str) -> tuple[str, ...]:
        """Topic levels after the prefix, e.g. ("units", "M07", "acks"); () if not ours."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            return ()
        return tuple(topic[len(head):].split("/"))
