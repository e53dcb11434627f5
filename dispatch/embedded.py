"""An embedded amqtt broker for the zero-setup demo (tests and production use Mosquitto).

amqtt speaks MQTT 3.1.1 only, so clients of it use BrokerConfig(protocol="3.1.1"): persistent
sessions become clean_session=False, with no session expiry.

    async with EmbeddedBroker() as broker:
        cfg = broker.client_config()     # BrokerConfig(url=..., protocol="3.1.1")
"""
from __future__ import annotations

import logging
import socket

from dispatch.config import BrokerConfig
from dispatch.errors import DispatchError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    def __init__(self, port: int | None = None, host: str = "127.0.0.1"):
        self.host = host
        self.port = port or _free_port()
        self._broker = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def client_config(self, **overrides) -> BrokerConfig:
        return BrokerConfig(url=self.url, protocol="3.1.1", **overrides)

    async def start(self) -> None:
        try:
            from amqtt.broker import Broker
        except ImportError as exc:
            raise DispatchError("the embedded demo broker needs the amqtt package") from exc
        logging.getLogger("amqtt").setLevel(logging.WARNING)
        config = {"listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                  # Anonymous on loopback only; no $SYS plugin (it wants psutil) and no packet logging.
                  "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}}
        try:
            self._broker = Broker(config)
            await self._broker.start()
        except Exception as exc:  # amqtt raises its own BrokerError and OSError
            raise DispatchError(f"embedded amqtt broker failed to start on {self.host}:{self.port}: {exc}") from exc

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None

    async def __aenter__(self) -> "EmbeddedBroker":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()
