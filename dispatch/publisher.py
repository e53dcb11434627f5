"""Vision side: publish IncidentEvents to {prefix}/detections/{drone_id} (QoS 1).

    async with DetectionPublisher(BrokerConfig(url=...)) as pub:
        await pub.publish(IncidentEvent(IncidentState.NEW, incident))

`publish` waits (up to timeout_s) for a connection and for the broker's PUBACK, so a returned call
means the broker has the detection; a DispatchError means it does not (the caller may retry).
"""
from __future__ import annotations

import asyncio
import base64

from common.values import IncidentEvent
from dispatch.config import BrokerConfig
from dispatch.errors import DispatchError
from dispatch.mqtt import Backoff, MqttSession
from dispatch.schemas import DetectionMessage, IncidentPayload, dump
from dispatch.topics import Topics, check_id


def detection_payload(event: IncidentEvent) -> bytes:
    inc = event.incident
    snapshot = base64.b64encode(inc.snapshot_jpeg).decode() if inc.snapshot_jpeg else None
    return dump(DetectionMessage(state=event.state, incident=IncidentPayload.of(inc), snapshot=snapshot))


class DetectionPublisher:
    def __init__(self, broker: BrokerConfig, topic_prefix: str = "patrol", client_id: str | None = None):
        self.topics = Topics(topic_prefix)
        self.session = MqttSession(broker, client_id=client_id, name="detection-publisher")
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "DetectionPublisher":
        self._task = asyncio.create_task(self.session.run(None, self._stop))
        await self.session.wait_connected(self.session.broker.connect_timeout_s)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        self._stop.set()
        if self._task:
            await self._task

    async def publish(self, event: IncidentEvent, timeout_s: float = 10.0) -> None:
        drone_id = check_id(event.incident.drone_id, "incident drone_id")
        payload = detection_payload(event)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        backoff = Backoff(self.session.broker.reconnect_min_s, self.session.broker.reconnect_max_s)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DispatchError(f"detection {event.incident.id} not delivered within {timeout_s} s")
            try:
                await self.session.wait_connected(remaining)
                await self.session.publish(self.topics.detections(drone_id), payload, qos=1,
                                           timeout_s=max(0.1, min(remaining, self.session.broker.operation_timeout_s)))
                return
            except DispatchError:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(min(backoff.next(), max(0.0, deadline - loop.time())))
