"""The rider web app: a phone page that is a unit's client, served by the controller
(`patrol run --web`, `patrol dispatch --web`) on the guarded local server of common/httpd.py.

The page talks MQTT over WebSockets straight to the broker (the `listener … protocol websockets`
of `patrol broker-config`) with the unit's own login: the officer types the unit id and password
on the phone; the controller never serves a password, only where the broker is. On the wire it
behaves as the terminal client (dispatch/rider.py): persistent session under the unit's login,
QoS 1 alerts shown once per `alert_id`, acks kept in an outbox (localStorage) until the broker
took them, OwnTracks `location` from the Geolocation API, retained presence with a Last Will.

    /rider/              the page (dispatch/static/rider/index.html, rider.css, rider.js)
    /rider/config.json   where the broker's WebSockets listener is, and the topic prefix
    /rider/mqtt.min.js   the vendored MQTT.js browser build (static/rider/vendor/README.md)

    add_rider_routes(server, RiderPageConfig(ws_url="wss://broker.example:9001"))
    server = await serve_rider_app(RiderWebOptions(host, port, token), page)   # `patrol dispatch --web`
"""
from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from common.httpd import DEFAULT_HOST, TOKEN_BYTES, WebAccess, WebServer, WebServerError, is_loopback
from dispatch.errors import DispatchError
from dispatch.topics import check_id

STATIC = Path(__file__).with_name("static") / "rider"
DEFAULT_WS_PORT = 9001  # `patrol broker-config --ws-port`


@dataclass(frozen=True)
class RiderPageConfig:
    """What the page needs to find the broker. Without `ws_url` the page connects to
    ws://HOST:ws_port/ (wss:// when the page itself came over https), HOST being the name the
    phone used to open the page: controller and broker on one machine."""

    ws_url: str | None = None
    ws_port: int = DEFAULT_WS_PORT
    topic_prefix: str = "patrol"

    def __post_init__(self) -> None:
        if self.ws_url is not None:
            parts = urlsplit(self.ws_url)
            if parts.scheme not in ("ws", "wss") or not parts.hostname:
                raise DispatchError(f"rider broker address {self.ws_url!r}: want ws://HOST:PORT or wss://HOST:PORT "
                                    "(the broker's WebSockets listener as the phones reach it)")
            if parts.username or parts.password:
                raise DispatchError(f"rider broker address {self.ws_url!r}: no login in it; each officer types "
                                    "their own on the phone")
        if not 0 < self.ws_port < 65536:
            raise DispatchError(f"rider broker port {self.ws_port}: outside 1-65535")
        check_id(self.topic_prefix, "topic prefix")


def add_rider_routes(server: WebServer, config: RiderPageConfig) -> None:
    """Serve the rider app under /rider/ with the permission the server's pages need (VIEW)."""
    html = "text/html; charset=utf-8"
    server.add_static("/rider", STATIC / "index.html", html)
    server.add_static("/rider/", STATIC / "index.html", html)
    server.add_static("/rider/rider.css", STATIC / "rider.css", "text/css; charset=utf-8")
    server.add_static("/rider/rider.js", STATIC / "rider.js", "text/javascript; charset=utf-8")
    server.add_static("/rider/mqtt.min.js", STATIC / "vendor" / "mqtt.min.js", "text/javascript; charset=utf-8")
    body = json.dumps(asdict(config)).encode()

    async def config_json(writer, head_only: bool) -> None:
        await server.respond(writer, 200, "application/json", body, head_only)

    server.add_route("/rider/config.json", config_json)


@dataclass(frozen=True)
class RiderWebOptions:
    """`patrol dispatch --web [HOST:]PORT --web-token TOKEN --web-allow-host NAME...`."""

    host: str = DEFAULT_HOST
    port: int = 0
    token: str | None = None
    allowed_hosts: tuple[str, ...] = ()


async def serve_rider_app(options: RiderWebOptions, page: RiderPageConfig) -> WebServer:
    """`patrol dispatch --web`: a web server with the rider app only, started (bound) and its
    address printed; a token is generated when it is reachable beyond this machine without one
    (the page shows where the broker is). The caller runs `server.serve(stop)`."""
    token, generated = options.token, None
    if token is None and not is_loopback(options.host):
        token = generated = secrets.token_urlsafe(TOKEN_BYTES)
    try:
        server = WebServer(options.host, options.port, WebAccess.view_token(token), options.allowed_hosts,
                           name="rider web app")
        add_rider_routes(server, page)
        url = await server.start()
    except WebServerError as exc:
        raise DispatchError(str(exc)) from None
    page_url = f"{url}rider/"
    if generated:
        print(f"rider web app: {page_url}?token={generated}  (token generated for this run: "
              f"{options.host} is reachable beyond this machine)", flush=True)
    elif token:
        print(f"rider web app: {page_url}  (open {page_url}?token=TOKEN once with your --web-token)", flush=True)
    else:
        print(f"rider web app: {page_url}", flush=True)
    return server
