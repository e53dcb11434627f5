"""The embedded amqtt broker: a dispatcher that connects after units announced themselves."""
from __future__ import annotations

import asyncio

from dispatch.config import DispatchConfig
from dispatch.controller import Dispatcher
from dispatch.embedded import EmbeddedBroker
from dispatch.rider import RiderClient, RiderStore
from tests.dispatch.conftest import wait_until

UNITS = 20


async def test_dispatcher_subscribes_after_20_units_published_retained_presence(tmp_path):
    """Twenty units publish retained presence first; the dispatcher's subscribe completes anyway
    (amqtt delivers the retained QoS 1 messages before its SUBACK and waits for their PUBACKs),
    every presence reaches it and every unit that then reports its position is known."""
    async with EmbeddedBroker() as broker:
        cfg = broker.client_config(connect_timeout_s=3, operation_timeout_s=5)
        riders = [RiderClient(cfg, f"M{i:02d}", RiderStore(tmp_path / f"m{i:02d}.sqlite")) for i in range(UNITS)]
        await asyncio.gather(*(r.start(wait_s=5) for r in riders))
        dispatcher = Dispatcher(cfg, DispatchConfig(journal_path=tmp_path / "j.sqlite"))
        stop = asyncio.Event()
        task = asyncio.create_task(dispatcher.run(stop))
        try:
            await dispatcher.session.wait_connected(8)
            assert dispatcher.session.connections == 1, "the subscribe must not have timed out and reconnected"
            await wait_until(lambda: dispatcher.stats.received >= UNITS, 5, f"the {UNITS} retained presences")
            for i, r in enumerate(riders):
                r.publish_location(32.0 + i * 1e-4, 119.58)
            await wait_until(lambda: len(dispatcher.registry) == UNITS, 5, f"all {UNITS} units known")
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            for r in riders:
                await r.stop()
                r.store.close()


async def test_alert_reaches_a_unit_after_the_embedded_broker_restarts(tmp_path):
    """A broker restart (the scenario fault) on amqtt: dispatcher and unit reconnect and
    resubscribe while retained messages are waiting, and the next incident's alert arrives."""
    import time

    from common.values import Incident, IncidentEvent, IncidentKind, IncidentState
    from dispatch.publisher import DetectionPublisher

    broker = EmbeddedBroker()
    await broker.start()
    cfg = broker.client_config(connect_timeout_s=3, operation_timeout_s=5, reconnect_min_s=0.2, reconnect_max_s=1)
    shown = []

    async def on_alert(alert):
        shown.append(alert)

    rider = RiderClient(cfg, "M01", RiderStore(tmp_path / "r.sqlite"), on_alert=on_alert)
    dispatcher = Dispatcher(cfg, DispatchConfig(journal_path=tmp_path / "j.sqlite"))
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        await dispatcher.session.wait_connected(5)
        await rider.start(wait_s=5)
        await broker.stop()
        await asyncio.sleep(0.5)
        await broker.start()
        await wait_until(lambda: dispatcher.session.connections == 2 and rider.session.connections == 2, 15,
                         "dispatcher and unit reconnected")
        rider.publish_location(32.001, 119.58)
        await wait_until(lambda: "M01" in dispatcher.registry, 5, "unit known after the restart")
        async with DetectionPublisher(cfg) as pub:
            now = time.time()
            await pub.publish(IncidentEvent(IncidentState.NEW, Incident(
                "after-restart", IncidentKind.FIRE, 0.9, now, now, 32.0, 119.58, 5.0, "D1")))
        await wait_until(lambda: shown, 8, "the alert after the restart")
        assert shown[0].incident.id == "after-restart"
    finally:
        await rider.stop()
        rider.store.close()
        stop.set()
        await asyncio.wait_for(task, 10)
        await broker.stop()
