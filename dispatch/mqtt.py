"""A small aiomqtt wrapper: connect with a timeout, the reconnect loop written once, Last Will,
persistent sessions (MQTT 5: clean start off + session expiry), manual acks for QoS 1.

Manual acks matter for "nothing lost": paho normally PUBACKs a QoS 1 message as soon as it is
read off the socket; we PUBACK only after the handler returned (i.e. after the journal commit),
so a message in flight when the process dies is redelivered by the broker on reconnect.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from dispatch.config import BrokerConfig
from dispatch.errors import DispatchError, JournalError

log = logging.getLogger(__name__)

Handler = Callable[[aiomqtt.Message], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class LastWill:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class Backoff:
    """Exponential back-off between retries: min_s, doubling up to max_s; reset() after a success."""

    def __init__(self, min_s: float, max_s: float):
        self.min_s, self.max_s = min_s, max(min_s, max_s)
        self._next_s = min_s

    def next(self) -> float:
        delay_s, self._next_s = self._next_s, min(self._next_s * 2, self.max_s)
        return delay_s

    def reset(self) -> None:
        self._next_s = self.min_s


class MqttSession:
    """One long-lived client identity; `run()` keeps it connected until `stop` is set."""

    def __init__(self, broker: BrokerConfig, *, client_id: str | None = None, persistent: bool = False,
                 will: LastWill | None = None, subscriptions: Sequence[tuple[str, int]] = (),
                 manual_ack: bool = False, on_connect: Callable[[], Awaitable[None]] | None = None,
                 name: str = "mqtt"):
        if persistent and not client_id:
            raise DispatchError(f"{name}: a persistent session needs a fixed client id")
        self.broker = broker
        # One login per client: a broker from `patrol broker-config` replaces the client id by the
        # user name anyway (use_username_as_clientid); using it here keeps logs and sessions honest.
        self.client_id = broker.username or client_id
        self.persistent = persistent
        self.will = will
        self.subscriptions = list(subscriptions)
        self.manual_ack = manual_ack
        self.on_connect = on_connect
        self.name = name
        self.connected = asyncio.Event()
        self.connections = 0  # how many times we (re)connected; tests and logs use it
        self._client: aiomqtt.Client | None = None

    def _make_client(self) -> aiomqtt.Client:
        b = self.broker
        props = None
        v5 = b.protocol == "5"
        if self.persistent and v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = b.session_expiry_s
        tls_context = None
        if b.tls:
            tls_context = ssl.create_default_context(cafile=str(b.ca_file) if b.ca_file else None)
            if b.cert_file:
                tls_context.load_cert_chain(str(b.cert_file), str(b.key_file) if b.key_file else None)
            if b.tls_insecure:
                tls_context.check_hostname = False
        will = None
        if self.will:
            will = aiomqtt.Will(self.will.topic, self.will.payload, self.will.qos, self.will.retain)
        client = aiomqtt.Client(
            b.host, b.port, username=b.username,
            password=b.password.get_secret_value() if b.password else None, identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311, will=will,
            keepalive=b.keepalive_s, timeout=b.connect_timeout_s,
            clean_session=None if v5 else not self.persistent, properties=props,
            tls_context=tls_context, max_queued_outgoing_messages=0,
            # Alerts are small packets that must leave now: Nagle + delayed ACK cost ~40 ms each.
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            **({"clean_start": not self.persistent} if v5 else {}))
        # The outbox publishes to many topics at once (one in-order stream per topic); that is by
        # design, not the runaway aiomqtt warns about above 10 pending calls.
        client.pending_calls_threshold = 1000
        if self.manual_ack:
            client._client.manual_ack_set(True)  # noqa: SLF001 — aiomqtt does not expose it; setup.cfg pins aiomqtt<3 for these privates
        return client

    async def run(self, handler: Handler | None, stop: asyncio.Event) -> None:
        """Connect, subscribe, feed messages to handler; reconnect with back-off until stop."""
        backoff = Backoff(self.broker.reconnect_min_s, self.broker.reconnect_max_s)
        while not stop.is_set():
            client = self._make_client()
            try:
                async with client:
                    self._client = client
                    # The message loop runs before and while we subscribe: a broker may deliver
                    # retained QoS 1 messages before its SUBACK and hold the SUBACK until they are
                    # acknowledged (amqtt does), and with manual acks only the loop acknowledges.
                    consumer = asyncio.create_task(self._consume(client, handler), name=f"{self.name}-consume")
                    try:
                        await self._subscribe(client, consumer)
                        self.connections += 1
                        self.connected.set()
                        backoff.reset()
                        log.info("%s connected to %s (connection %d)", self.name, self.broker.url, self.connections)
                        if self.on_connect:
                            await self.on_connect()
                        await self._pump(consumer, stop)
                    finally:
                        consumer.cancel()
                        await asyncio.gather(consumer, return_exceptions=True)
            except aiomqtt.MqttError as exc:
                if stop.is_set():
                    break
                delay_s = backoff.next()
                log.warning("%s: broker %s: %s; retrying in %.1f s", self.name, self.broker.url, exc, delay_s)
            else:
                delay_s = backoff.next()  # a clean end of the connection: still do not spin
            finally:
                self.connected.clear()
                self._client = None
            if stop.is_set():
                break
            try:
                await asyncio.wait_for(stop.wait(), delay_s)
            except TimeoutError:
                pass

    async def _subscribe(self, client: aiomqtt.Client, consumer: asyncio.Task) -> None:
        """One SUBSCRIBE for all topics, while the consumer keeps reading (and acknowledging)."""
        if not self.subscriptions:
            return
        sub = asyncio.ensure_future(client.subscribe(list(self.subscriptions), timeout=self.broker.operation_timeout_s))
        done, _ = await asyncio.wait({sub, consumer}, return_when=asyncio.FIRST_COMPLETED)
        if sub not in done:  # the consumer died first (connection lost or a journal failure)
            sub.cancel()
            await asyncio.gather(sub, return_exceptions=True)
            consumer.result()
            raise aiomqtt.MqttError(f"{self.name}: connection lost while subscribing")
        sub.result()

    async def _consume(self, client: aiomqtt.Client, handler: Handler | None) -> None:
        async for message in client.messages:
            if handler is not None:
                try:
                    await handler(message)
                except JournalError:
                    raise  # not acknowledged: the broker redelivers it after a restart
                except Exception:  # a handler bug must not take the service down
                    log.exception("%s: handler failed on %s", self.name, message.topic)
            if self.manual_ack and message.qos > 0:
                client._client.ack(message.mid, message.qos)  # noqa: SLF001

    async def _pump(self, consumer: asyncio.Task, stop: asyncio.Event) -> None:
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if consumer in done and not consumer.cancelled() and consumer.exception():
            raise consumer.exception()

    async def wait_connected(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self.connected.wait(), timeout_s)
        except TimeoutError as exc:
            raise DispatchError(f"{self.name}: not connected to {self.broker.url} within {timeout_s} s") from exc

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                      timeout_s: float | None = None) -> None:
        """Publish and (QoS 1) wait for PUBACK; DispatchError when disconnected or timed out."""
        client = self._client
        if client is None:
            raise DispatchError(f"{self.name}: not connected to {self.broker.url}")
        timeout_s = timeout_s or self.broker.operation_timeout_s
        try:
            await client.publish(topic, payload, qos=qos, retain=retain, timeout=timeout_s)
        except aiomqtt.MqttError as exc:
            raise DispatchError(f"{self.name}: publish to {topic} failed: {exc}") from exc
        except TimeoutError as exc:
            raise DispatchError(f"{self.name}: publish to {topic} timed out after {timeout_s} s") from exc

    def publish_nowait(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> bool:
        """Fire-and-forget (locations, drone state): False when not connected."""
        client = self._client
        if client is None:
            return False
        info = client._client.publish(topic, payload, qos, retain)  # noqa: SLF001
        return info.rc == 0
