"""The one root error of dispatch/: everything that goes wrong talking to the broker or the journal."""
from __future__ import annotations


class DispatchError(Exception):
    """Dispatch failed: broker unreachable or timed out, bad configuration, journal unusable."""


class PayloadError(DispatchError):
    """An inbound MQTT payload failed validation; the message names the topic and the reason."""


class JournalError(DispatchError):
    """The SQLite journal could not be written. Fatal: the message being handled is not acknowledged,
    so the broker redelivers it once the controller is restarted on a healthy journal."""
