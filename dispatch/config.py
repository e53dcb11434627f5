"""Typed configuration for dispatch/: one pydantic model per section, unknown keys rejected by name."""
from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from dispatch.errors import DispatchError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerConfig(_Section):
    """Where the broker is and how to log in. mqtts:// turns TLS on.

    The password is a SecretStr (shown as `**********` in logs, reprs and dumps); a password
    written into the URL (mqtt://user:pw@host) is moved out of it, so `url` is always safe to print.
    With a user name, the MQTT client id is that user name: `patrol broker-config` brokers tie
    the two together (`use_username_as_clientid`), one login per client.
    """

    url: str = Field("mqtt://127.0.0.1:1883", title="broker URL, mqtt://host[:port] or mqtts://host[:port]")
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = Field(None, title="CA certificate to verify the broker (mqtts)")
    cert_file: Path | None = Field(None, title="client certificate (mqtts, optional)")
    key_file: Path | None = None
    tls_insecure: bool = Field(False, title="skip the broker hostname check (self-signed test certs)")
    connect_timeout_s: float = Field(5.0, gt=0, le=120)
    operation_timeout_s: float = Field(5.0, gt=0, le=120, title="timeout of one publish/subscribe")
    keepalive_s: int = Field(15, ge=2, le=3600)
    reconnect_min_s: float = Field(0.2, gt=0, le=60)
    reconnect_max_s: float = Field(5.0, gt=0, le=300)
    session_expiry_s: int = Field(7 * 24 * 3600, ge=0, title="how long the broker keeps a persistent session")
    protocol: Literal["5", "3.1.1"] = Field("5", title="MQTT version; 3.1.1 for the embedded amqtt demo broker")

    @model_validator(mode="before")
    @classmethod
    def _credentials_out_of_url(cls, data):
        if isinstance(data, dict) and isinstance(data.get("url"), str):
            parts = urlsplit(data["url"])
            if parts.username is not None or parts.password is not None:
                data = dict(data)
                if data.get("username") is None:
                    data["username"] = unquote(parts.username or "") or None
                if parts.password is not None and data.get("password") is None:
                    data["password"] = unquote(parts.password)
                data["url"] = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        return data

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"broker url {value!r}: scheme must be mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"broker url {value!r} has no host")
        try:
            parts.port
        except ValueError as exc:
            raise ValueError(f"broker url {value!r}: bad port") from exc
        return value

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme in ("mqtts", "ssl")

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)


class DispatchConfig(_Section):
    """How the controller assigns incidents to motorcycle units."""

    topic_prefix: str = "patrol"
    client_id: str = Field("patrol-controller", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    journal_path: Path = Field(Path("dispatch-journal.sqlite"), title="SQLite outbox + state journal")
    ack_timeout_s: float = Field(20.0, gt=0, le=3600, title="no accept within this -> next unit")
    unit_silence_s: float = Field(30.0, gt=0, title="a unit silent this long is not assignable")
    typical_speed_m_s: float = Field(8.0, gt=0, le=60, title="straight-line ETA speed of a motorcycle in town")
    arrive_radius_m: float = Field(40.0, gt=0, title="a unit this close to the incident has arrived")
    escalation_retry_s: float = Field(30.0, gt=0, title="re-escalate / retry assignment this often")
    load_penalty_s: float = Field(600.0, ge=0, title="ETA penalty per incident a unit already holds")
    max_load: int = Field(1, ge=1, le=10, title="incidents one unit may hold at once")
    snapshot_max_bytes: int = Field(30_000, ge=1000, le=30_000, title="alert snapshot JPEG size cap")
    drone_state_interval_s: float = Field(1.0, gt=0, title="retained drone state at most this often")
    closed_retain_s: float = Field(3600.0, ge=0, title="keep a closed incident's retained state this long")
    status_interval_s: float = Field(5.0, gt=0, title="republish retained controller status with counters")
    drones: tuple[str, ...] = Field((), title="drones whose detections are taken (empty: any); a detection "
                                              "from another drone is refused and logged")
    min_confidence: float = Field(0.0, ge=0, le=1, title="detections below this are recorded, not dispatched")
    duplicate_radius_m: dict[str, float] = Field(
        default_factory=lambda: {"fire": 60.0, "crowd": 60.0, "stopped_vehicle": 15.0, "intrusion": 30.0,
                                 "reported": 80.0},
        title="a new report of the same kind this close to an open incident is the same incident (by kind); "
              "`reported`: a vision report of any kind this close to an open alarm confirms it")


def load_config(path: Path) -> tuple[BrokerConfig, DispatchConfig]:
    """Read a YAML file with `broker:` and `dispatch:` sections; errors name the bad key."""
    import yaml
    from pydantic import ValidationError

    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DispatchError(f"cannot read dispatch config {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise DispatchError(f"{path}: top level must be a mapping with broker:/dispatch: sections")
    unknown = set(raw) - {"broker", "dispatch"}
    if unknown:
        raise DispatchError(f"{path}: unknown section(s) {sorted(unknown)}; expected broker, dispatch")
    try:
        return BrokerConfig(**(raw.get("broker") or {})), DispatchConfig(**(raw.get("dispatch") or {}))
    except ValidationError as exc:
        raise DispatchError(f"{path}: {exc}") from exc
