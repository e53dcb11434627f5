"""`patrol broker-config`: a Mosquitto setup with per-unit users, ACLs and a TLS listener.

Writes into one directory:
    mosquitto.conf      a TLS listener (--bind, default all interfaces) and a plaintext one on
                        loopback only (on another address only with --insecure-plain-on-network);
                        a WebSockets listener for the rider web app (--ws-port, default 9001) on
                        the loopback interface, or with TLS (wss://) on --ws-interface;
                        no anonymous access; one login per client (`use_username_as_clientid`:
                        a client's id is its user name, so nobody can take over or resume another
                        client's session); persistence on
    passwd              one user per unit, per drone (vision worker), the controller, an operator
    acl                 a unit publishes only its own location/status/acks and reads only its own
                        alerts plus public state; a drone's vision worker publishes only its own
                        detections and worker status and reads only its drone's state
    credentials.yaml    the generated passwords to hand out; kept on re-runs
    certs/              ca.crt, ca.key, server.crt, server.key when not given (openssl CLI); kept on
                        re-runs so the riders' --ca-file keeps working; `--rotate server` issues a
                        new server certificate from the same CA, `--rotate ca` a new CA (every
                        client then needs the new ca.crt)

Every secret (credentials.yaml, passwd, the keys) is created with mode 0600 (never chmod-ed after
it was written). Password hashes are made here in mosquitto's own `$7$` format (PBKDF2-HMAC-SHA512,
101 iterations, 12-byte salt), which mosquitto 2 reads; `mosquitto_passwd -b` is not used because
it takes the password on its command line, visible in the process list.
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from dispatch.errors import DispatchError
from dispatch.topics import Topics, check_id

CONTROLLER_USER = "patrol-controller"
OPERATOR_USER = "patrol-operator"
DRONE_USER_PREFIX = "drone-"
PBKDF2_ITERATIONS = 101  # mosquitto_passwd's default for $7$
CERT_FILES = ("ca.crt", "ca.key", "server.crt", "server.key")
WS_LOOPBACK_INTERFACE = "lo"


def mosquitto_hash(password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """A password hash in mosquitto's `$7$iterations$salt$hash` (PBKDF2-SHA512) format."""
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def write_private(path: Path, text: str) -> None:
    """Write a secret: created 0600 (a temp file in the same directory, then renamed over path),
    so it is never readable by others, not even between the write and a chmod."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class BrokerLayout:
    units: list[str]
    drones: list[str] = field(default_factory=list)
    port: int = 1883
    tls_port: int = 8883
    bind: str = "0.0.0.0"  # the TLS listener: what units reach over the network
    plain_bind: str = "127.0.0.1"  # the plaintext listener: local clients (controller, vision on this host)
    plain_on_network: bool = False  # allow plain_bind off loopback: passwords then cross the network in clear
    topic_prefix: str = "patrol"
    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None
    hostname: str = "localhost"
    persistence_dir: Path | None = None
    rotate: Literal["server", "ca"] | None = None  # generated certificates: issue new ones
    run_as_root: bool = False  # add `user root` (tests run mosquitto as root in private temp dirs)
    ws_port: int = 9001  # the WebSockets listener the rider web app connects to (0 = none)
    # An interface NAME, not an address: libwebsockets 4.1 (mosquitto 2.0's) binds a websockets
    # listener given an IPv4 address to every interface (checked with mosquitto 2.0.11), so only
    # an interface name keeps it where it was put. "lo": this machine only, plain ws://; any
    # other interface carries unit passwords over the network and gets the TLS certificate (wss://).
    ws_interface: str = WS_LOOPBACK_INTERFACE

    def __post_init__(self) -> None:
        if not self.units:
            raise DispatchError("broker-config needs at least one unit id")
        for u in self.units:
            check_id(u, "unit id")
        for d in self.drones:
            check_id(d, "drone id")
        clash = {CONTROLLER_USER, OPERATOR_USER} & set(self.units)
        if clash:
            raise DispatchError(f"unit id(s) {sorted(clash)} clash with reserved user names")
        drone_like = sorted(u for u in self.units if u.startswith(DRONE_USER_PREFIX))
        if drone_like:  # the login drone-D1 belongs to drone D1's vision worker
            raise DispatchError(f"unit id(s) {drone_like} start with {DRONE_USER_PREFIX!r}, the prefix of drone "
                                "logins; a unit must not share a login with a drone")
        dup = {u for u in self.units if self.units.count(u) > 1}
        if dup:
            raise DispatchError(f"duplicate unit id(s): {sorted(dup)}")
        if not self.port and not self.tls_port:
            raise DispatchError("both listeners disabled (--port 0 --tls-port 0)")
        if self.ws_port and self.ws_port in (self.port, self.tls_port):
            raise DispatchError(f"--ws-port {self.ws_port} is also another listener's port")
        if self.ws_port and (not self.ws_interface or any(c in self.ws_interface for c in ".: /")):
            raise DispatchError(f"--ws-interface {self.ws_interface!r}: give an interface name such as lo or wlan0, "
                                "not an address (mosquitto's websockets bind an address on every interface)")
        if self.port and not self.plain_on_network and not is_loopback(self.plain_bind):
            raise DispatchError(f"a plaintext listener on {self.plain_bind} would carry unit passwords in clear; "
                                "keep it on loopback, turn it off (--port 0) or pass --insecure-plain-on-network")
        if bool(self.cert_file) != bool(self.key_file):
            raise DispatchError("give both --cert and --key, or neither to generate them")
        if self.rotate and self.cert_file:
            raise DispatchError("--rotate renews generated certificates; with --cert/--key replace the files instead")


@dataclass(frozen=True)
class BrokerFiles:
    config_path: Path
    password_path: Path
    acl_path: Path
    credentials_path: Path
    ca_file: Path | None
    credentials: dict[str, str]


def drone_user(drone_id: str) -> str:
    return f"{DRONE_USER_PREFIX}{drone_id}"


def acl_text(layout: BrokerLayout) -> str:
    t = Topics(layout.topic_prefix)
    p = layout.topic_prefix
    lines = ["# generated by `patrol broker-config`; see docs/mqtt-api.md", "",
             f"user {CONTROLLER_USER}", f"topic readwrite {p}/#", "",
             f"user {OPERATOR_USER}", f"topic read {p}/#",
             f"topic write {p}/operator/commands",  # patrol run's operator control (runloop/operator.py)
             f"topic write {t.alarms('+')}", ""]  # a call centre's alarms (patrol.alarm/1)
    for unit in layout.units:
        lines += [f"user {unit}",
                  f"topic write {t.unit_location(unit)}",
                  f"topic readwrite {t.unit_status(unit)}",
                  f"topic write {t.unit_acks(unit)}",
                  f"topic read {t.unit_alerts(unit)}",
                  f"topic read {t.incidents_all}",
                  f"topic read {t.controller_status}",
                  f"topic read {p}/drones/+/state",
                  ""]
    for drone in layout.drones:
        # its vision worker: its own detections and health, and the drone's state as a pose source
        lines += [f"user {drone_user(drone)}", f"topic write {t.detections(drone)}",
                  f"topic write {t.worker_status(drone)}", f"topic read {t.drone_state(drone)}",
                  f"topic read {t.controller_status}", ""]
    return "\n".join(lines)


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise DispatchError("no openssl on PATH to generate TLS certificates; pass --cert/--key/--ca")
    # umask 077: the keys openssl writes are private from the moment they exist
    proc = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, umask=0o077)
    if proc.returncode != 0:
        raise DispatchError(f"openssl {args[0]} failed: {proc.stderr.strip()[-400:]}")


def generate_certs(directory: Path, hostname: str, rotate: Literal["server", "ca"] | None = None
                   ) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for hostname (+ 127.0.0.1): (ca.crt, server.crt, server.key).

    Existing files are reused, so clients holding ca.crt keep working across re-runs; rotate="server"
    issues a new server certificate from the same CA, rotate="ca" starts over with a new CA.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca, server = directory / "ca.crt", directory / "server.crt"
    have = [(directory / name).exists() for name in CERT_FILES]
    if all(have) and rotate is None:
        return ca, server, directory / "server.key"
    if any(have) and not all(have) and rotate is None:
        missing = [n for n, h in zip(CERT_FILES, have) if not h]
        raise DispatchError(f"{directory} has some certificate files but not {missing}; restore them or "
                            "pass --rotate ca to start over with a new CA")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    if rotate == "ca" or not (directory / "ca.key").exists():
        _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
                 "-subj", "/CN=Dan Leopard Patrol broker CA", cwd=directory)
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={hostname}", cwd=directory)
    san = directory / "san.ext"
    san.write_text(f"subjectAltName=DNS:{hostname},DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.crt", "-days", "825", "-extfile", "san.ext", cwd=directory)
    return ca, server, directory / "server.key"


def write_broker_config(layout: BrokerLayout, out_dir: Path) -> BrokerFiles:
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    cred_path = out_dir / "credentials.yaml"
    old: dict[str, str] = {}
    if cred_path.exists():
        try:
            old = yaml.safe_load(cred_path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise DispatchError(f"{cred_path} is not valid YAML: {exc}") from exc
        if not isinstance(old, dict):
            raise DispatchError(f"{cred_path} must map user names to passwords")
    users = [CONTROLLER_USER, OPERATOR_USER, *layout.units, *(drone_user(d) for d in layout.drones)]
    credentials = {u: str(old.get(u) or secrets.token_urlsafe(18)) for u in users}
    write_private(cred_path, yaml.safe_dump(credentials, sort_keys=False))

    passwd = out_dir / "passwd"
    write_private(passwd, "".join(f"{user}:{mosquitto_hash(pw)}\n" for user, pw in credentials.items()))
    acl = out_dir / "acl"
    acl.write_text(acl_text(layout))

    persistence = Path(layout.persistence_dir or out_dir / "data").resolve()
    persistence.mkdir(parents=True, exist_ok=True)
    lines = ["# generated by `patrol broker-config` (Dan Leopard Patrol); MQTT API: docs/mqtt-api.md",
             "per_listener_settings false", "allow_anonymous false",
             f"password_file {passwd}", f"acl_file {acl}",
             "persistence true", f"persistence_location {persistence}/", "autosave_interval 30",
             "max_queued_messages 10000", "set_tcp_nodelay true"]
    if layout.run_as_root:
        lines.append("user root")
    # One login per client: the client id is the user name, so a unit cannot connect as
    # `patrol-controller` (knocking it off) nor resume another unit's queued session. A listener
    # setting: written before any `listener` line, mosquitto would open a default listener on
    # 0.0.0.0:1883 for it.
    one_login = "use_username_as_clientid true"
    if layout.port:
        lines += ["", f"listener {layout.port} {layout.plain_bind}", one_login]
    ca_file = None
    ws_tls = layout.ws_port and layout.ws_interface != WS_LOOPBACK_INTERFACE
    if layout.tls_port or ws_tls:
        if layout.cert_file:
            ca_file, cert, key = layout.ca_file, Path(layout.cert_file).resolve(), Path(layout.key_file).resolve()
            for f in (cert, key, *([ca_file] if ca_file else [])):
                if not Path(f).exists():
                    raise DispatchError(f"TLS file {f} does not exist")
        else:
            ca_file, cert, key = generate_certs(out_dir / "certs", layout.hostname, layout.rotate)
    if layout.tls_port:
        lines += ["", f"listener {layout.tls_port} {layout.bind}", one_login, f"certfile {cert}", f"keyfile {key}",
                  "tls_version tlsv1.2"]
        if ca_file:
            lines.append(f"cafile {Path(ca_file).resolve()}")
    if layout.ws_port:  # the rider web app (dispatch/riderapp.py): same logins, same ACLs
        lines += ["", f"listener {layout.ws_port} {layout.ws_interface}", "protocol websockets", one_login]
        if ws_tls:
            lines += [f"certfile {cert}", f"keyfile {key}", "tls_version tlsv1.2"]
    config = out_dir / "mosquitto.conf"
    config.write_text("\n".join(lines) + "\n")
    return BrokerFiles(config, passwd, acl, cred_path, Path(ca_file).resolve() if ca_file else None, credentials)
