"""dispatch: ground-air coordination over MQTT (docs/mqtt-api.md).

Controller side `Dispatcher`, vision side `DetectionPublisher`, officer side `RiderClient`.
"""
from dispatch.config import BrokerConfig, DispatchConfig
from dispatch.errors import DispatchError, PayloadError
from dispatch.topics import Topics

__all__ = ["BrokerConfig", "DispatchConfig", "DispatchError", "PayloadError", "Topics", "Dispatcher",
           "DetectionPublisher", "RiderClient", "RiderStore"]


def __getattr__(name: str):  # keep `import dispatch` light (no aiomqtt) until a service is used
    if name == "Dispatcher":
        from dispatch.controller import Dispatcher
        return Dispatcher
    if name == "DetectionPublisher":
        from dispatch.publisher import DetectionPublisher
        return DetectionPublisher
    if name in ("RiderClient", "RiderStore"):
        from dispatch import rider
        return getattr(rider, name)
    raise AttributeError(name)
