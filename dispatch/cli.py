"""`patrol dispatch`, `patrol rider`, `patrol broker-config`."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from dispatch.config import BrokerConfig, DispatchConfig, load_config
from dispatch.errors import DispatchError

if TYPE_CHECKING:
    from dispatch.riderapp import RiderPageConfig

log = logging.getLogger(__name__)


def add_broker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", default=None, help="broker URL mqtt://host[:port] or mqtts://host[:port]")
    p.add_argument("--username", default=None, help="login (also the MQTT client id on a broker-config broker)")
    p.add_argument("--password-file", type=Path, default=None,
                   help="file holding the password (or env PATROL_MQTT_PASSWORD)")
    p.add_argument("--password", default=None, help=argparse.SUPPRESS)  # deprecated: visible in the process list
    p.add_argument("--ca-file", type=Path, default=None, help="CA certificate for mqtts://")
    p.add_argument("--tls-insecure", action="store_true", help="do not check the broker's hostname")
    p.add_argument("--topic-prefix", default=None, help="topic prefix (default patrol)")
    p.add_argument("--mqtt-version", choices=("5", "3.1.1"), default=None,
                   help="MQTT protocol version (default 5; 3.1.1 for the embedded amqtt demo broker)")


def read_password(args: argparse.Namespace) -> str | None:
    """The broker password from --password-file or PATROL_MQTT_PASSWORD (never needed on the
    command line, where every user of the machine can read it in the process list)."""
    import os

    if args.password_file:
        try:
            password = Path(args.password_file).read_text().strip()
        except OSError as exc:
            raise DispatchError(f"cannot read --password-file {args.password_file}: {exc}") from exc
        if not password:
            raise DispatchError(f"--password-file {args.password_file} is empty")
        return password
    if args.password:
        log.warning("--password is deprecated: it shows in the process list; use --password-file or "
                    "PATROL_MQTT_PASSWORD")
        return args.password
    return os.environ.get("PATROL_MQTT_PASSWORD") or None


def broker_from_args(args: argparse.Namespace, base: BrokerConfig | None = None) -> BrokerConfig:
    data = base.model_dump() if base else {}
    if args.broker:
        data["url"] = args.broker
    if args.username:
        data["username"] = args.username
    password = read_password(args)
    if password:
        data["password"] = password
    if args.ca_file:
        data["ca_file"] = args.ca_file
    if args.tls_insecure:
        data["tls_insecure"] = True
    if getattr(args, "mqtt_version", None):
        data["protocol"] = args.mqtt_version
    try:
        return BrokerConfig(**data)
    except ValueError as exc:
        raise DispatchError(f"bad broker settings: {exc}") from exc


def register(subparsers) -> None:
    p = subparsers.add_parser("dispatch", help="the MQTT dispatch controller (alerts motorcycle units)")
    add_broker_args(p)
    p.add_argument("--config", type=Path, default=None, help="YAML with broker:/dispatch: sections")
    p.add_argument("--ack-timeout", type=float, default=None, help="seconds a unit has to accept (default 20)")
    p.add_argument("--journal", type=Path, default=None, help="SQLite journal (default dispatch-journal.sqlite)")
    p.add_argument("--unit-silence", type=float, default=None, help="seconds of silence before a unit is unassignable")
    p.add_argument("--escalation-retry", type=float, default=None, help="seconds between escalation retries")
    p.add_argument("--arrive-radius", type=float, default=None, help="metres: a unit this close has arrived")
    p.add_argument("--status-interval", type=float, default=None, help="seconds between controller status updates")
    p.add_argument("--client-id", default=None, help="MQTT client id of the controller (persistent session)")
    add_rider_web_arguments(p)
    p.set_defaults(func=cmd_dispatch)

    r = subparsers.add_parser("rider", help="the motorcycle officer's terminal app")
    add_broker_args(r)
    r.add_argument("--unit", required=True, help="unit id, e.g. M07")
    src = r.add_mutually_exclusive_group()
    src.add_argument("--gps", type=Path, default=None, help="replay fixes from a file (lat,lon per line) at 1 Hz")
    src.add_argument("--simulate", action="store_true", help="simulate the ride to accepted incidents")
    r.add_argument("--lat", type=float, default=32.0, help="start latitude for --simulate")
    r.add_argument("--lon", type=float, default=119.58, help="start longitude for --simulate")
    r.add_argument("--state-dir", type=Path, default=None, help="where alerts/acks are kept (default ~/.patrol-rider/UNIT)")
    r.set_defaults(func=cmd_rider)

    b = subparsers.add_parser("broker-config", help="write a Mosquitto config with per-unit users, ACLs and TLS")
    b.add_argument("--out", type=Path, required=True, help="output directory")
    b.add_argument("--units", required=True, help="comma separated unit ids, e.g. M01,M02 (or @file, one per line)")
    b.add_argument("--drones", default="", help="comma separated drone ids allowed to publish detections")
    b.add_argument("--port", type=int, default=1883, help="plain listener port (0 = none)")
    b.add_argument("--tls-port", type=int, default=8883, help="TLS listener port (0 = none)")
    b.add_argument("--bind", default="0.0.0.0", help="TLS listener address (default all interfaces)")
    b.add_argument("--plain-bind", default="127.0.0.1",
                   help="plaintext listener address (default 127.0.0.1; elsewhere needs --insecure-plain-on-network)")
    b.add_argument("--insecure-plain-on-network", action="store_true",
                   help="allow the plaintext listener off loopback (passwords cross the network in clear)")
    b.add_argument("--rotate", choices=("server", "ca"), default=None,
                   help="issue a new server certificate (server) or a new CA and server certificate (ca); "
                        "without it the existing ones are kept")
    b.add_argument("--cert", type=Path, default=None, help="server certificate (PEM); generated if omitted")
    b.add_argument("--key", type=Path, default=None, help="server key (PEM)")
    b.add_argument("--ca", type=Path, default=None, help="CA certificate (PEM)")
    b.add_argument("--hostname", default="localhost", help="name in a generated server certificate (changing it later needs --rotate server)")
    b.add_argument("--ws-port", type=int, default=9001,
                   help="MQTT over WebSockets for the rider web app (0 = none; default 9001)")
    b.add_argument("--ws-interface", default="lo",
                   help="network interface NAME of the WebSockets listener (default lo: this machine only); "
                        "on any other interface it uses the TLS certificate (wss://)")
    b.add_argument("--topic-prefix", default="patrol")
    b.add_argument("--persistence-dir", type=Path, default=None)
    b.set_defaults(func=cmd_broker_config)


def add_rider_web_arguments(parser: argparse.ArgumentParser, web: bool = True) -> None:
    """--web and what guards it, and where the rider web app finds the broker (docs/run.md, "Riders
    on their phones"). `patrol run` has its own --web; it takes only --rider-broker (web=False)."""
    from common.httpd import web_address_arg

    if web:
        parser.add_argument("--web", metavar="[HOST:]PORT", type=web_address_arg, default=None,
                            help="serve the rider web app at http://HOST:PORT/rider/ (HOST 127.0.0.1 unless given)")
        parser.add_argument("--web-token", metavar="TOKEN", default=os.environ.get("PATROL_WEB_TOKEN"),
                            help="the token the page asks for (default: env PATROL_WEB_TOKEN); generated when "
                                 "--web is reachable beyond this machine without one")
        parser.add_argument("--web-allow-host", metavar="NAME", action="append", default=[],
                            help="one more name the page answers to in the Host header (repeatable)")
    parser.add_argument("--rider-broker", metavar="URL", default=None, type=_rider_broker_arg,
                        help="the broker's WebSockets listener as riders' phones reach it, ws://HOST:PORT or "
                             "wss://HOST:PORT (default: the page's own host, port 9001)")


def _rider_broker_arg(text: str) -> str:
    from dispatch.riderapp import RiderPageConfig

    try:
        return RiderPageConfig(ws_url=text).ws_url
    except DispatchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def rider_page_config(args: argparse.Namespace, topic_prefix: str = "patrol") -> RiderPageConfig:
    from dispatch.riderapp import RiderPageConfig

    return RiderPageConfig(ws_url=args.rider_broker, topic_prefix=topic_prefix)


def _dispatch_config(args: argparse.Namespace) -> tuple[BrokerConfig, DispatchConfig]:
    broker, dispatch = (load_config(args.config) if args.config else (BrokerConfig(), DispatchConfig()))
    broker = broker_from_args(args, broker)
    overrides = {k: v for k, v in {
        "ack_timeout_s": args.ack_timeout, "journal_path": args.journal, "unit_silence_s": args.unit_silence,
        "escalation_retry_s": args.escalation_retry, "arrive_radius_m": args.arrive_radius,
        "client_id": args.client_id, "topic_prefix": args.topic_prefix,
        "status_interval_s": args.status_interval}.items() if v is not None}
    try:
        dispatch = DispatchConfig(**{**dispatch.model_dump(), **overrides})
    except ValueError as exc:
        raise DispatchError(f"bad dispatch settings: {exc}") from exc
    return broker, dispatch


def cmd_dispatch(args: argparse.Namespace) -> int:
    from dispatch.controller import Dispatcher

    try:
        broker, config = _dispatch_config(args)
    except DispatchError as exc:
        print(f"patrol dispatch: {exc}")
        return 2
    web = None
    if args.web is not None:
        from dispatch.riderapp import RiderWebOptions

        try:
            page = rider_page_config(args, config.topic_prefix)
        except DispatchError as exc:
            print(f"patrol dispatch: {exc}")
            return 2
        web = RiderWebOptions(*args.web, token=args.web_token, allowed_hosts=tuple(args.web_allow_host))
    if broker.username and args.client_id and args.client_id != broker.username:
        log.warning("--client-id %s ignored: logged in as %s, which is also the client id (one login per client)",
                    args.client_id, broker.username)

    async def main() -> None:
        asked_to_stop, stop = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, asked_to_stop.set)
        dispatcher = Dispatcher(broker, config)
        print(f"patrol dispatch: broker {broker.url}, journal {config.journal_path}, ack timeout "
              f"{config.ack_timeout_s:g} s", flush=True)
        server = None
        if web is not None:
            from dispatch.riderapp import serve_rider_app

            server = await serve_rider_app(web, page)  # bound now: a taken port is an error at start
        task = asyncio.create_task(dispatcher.run(stop))
        served = asyncio.create_task(server.serve(stop)) if server else None
        waiter = asyncio.create_task(asked_to_stop.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not task.done():
            if dispatcher.session.connected.is_set():  # say goodbye while still connected
                await dispatcher.publish_offline()
            stop.set()
        await task
        stop.set()
        if served:
            await served

    try:
        asyncio.run(main())
    except DispatchError as exc:
        print(f"patrol dispatch: {exc}")
        return 1
    return 0


def cmd_rider(args: argparse.Namespace) -> int:
    from dispatch.rider import GpsTrack, RiderApp, RiderClient, RiderStore
    from dispatch.topics import check_id

    try:
        check_id(args.unit, "unit id")
        broker = broker_from_args(args)
        if broker.password is not None and broker.username is None:
            broker = broker.model_copy(update={"username": args.unit})  # a unit logs in as itself
        if broker.username is not None and broker.username != args.unit:
            raise DispatchError(f"--username {broker.username} is not unit {args.unit}: a unit logs in as itself "
                                "(the broker lets each login use only its own unit's topics)")
        gps = GpsTrack.load(args.gps) if args.gps else None
    except DispatchError as exc:
        print(f"patrol rider: {exc}")
        return 2
    state_dir = args.state_dir or Path.home() / ".patrol-rider" / args.unit
    store = RiderStore(state_dir / "rider.sqlite")

    async def main() -> None:
        client = RiderClient(broker, args.unit, store, topic_prefix=args.topic_prefix or "patrol")
        app = RiderApp(client, state_dir / "snapshots", gps, args.simulate, (args.lat, args.lon))
        await app.run()

    try:
        asyncio.run(main())
    finally:
        store.close()
    return 0


def cmd_broker_config(args: argparse.Namespace) -> int:
    from dispatch.broker_config import BrokerLayout, write_broker_config

    units = args.units
    if units.startswith("@"):
        units = ",".join(line.strip() for line in Path(units[1:]).read_text().splitlines() if line.strip())
    try:
        layout = BrokerLayout(
            units=[u.strip() for u in units.split(",") if u.strip()],
            drones=[d.strip() for d in args.drones.split(",") if d.strip()],
            port=args.port, tls_port=args.tls_port, bind=args.bind, plain_bind=args.plain_bind,
            plain_on_network=args.insecure_plain_on_network, rotate=args.rotate, topic_prefix=args.topic_prefix,
            cert_file=args.cert, key_file=args.key, ca_file=args.ca, hostname=args.hostname,
            persistence_dir=args.persistence_dir, ws_port=args.ws_port, ws_interface=args.ws_interface)
        result = write_broker_config(layout, args.out)
    except (DispatchError, ValueError) as exc:
        print(f"patrol broker-config: {exc}")
        return 2
    print(f"wrote {result.config_path}, {result.password_path}, {result.acl_path}")
    print(f"credentials (keep secret, mode 0600): {result.credentials_path}")
    if result.ca_file:
        print(f"CA certificate for the units' --ca-file: {result.ca_file}")
    print(f"run: mosquitto -c {result.config_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m dispatch ...`: the same subcommands without the other packages' CLIs."""
    parser = argparse.ArgumentParser(prog="patrol")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
