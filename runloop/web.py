"""The live web view of a run: a small local HTTP server on asyncio (stdlib only) serving

    /            one self-contained page (inline SVG map, JS and CSS; no tiles, no CDN)
    /state.json  the live state the terminal table shows (runloop.live.LiveState), positions
                 included, plus the plan layer: cells, planned sortie routes, dock
    /events      Server-Sent Events: the live state pushed whenever it changes; the page falls
                 back to polling /state.json when SSE is unavailable
    /alarms      POST a patrol.alarm/1 (docs/mqtt-api.md): the dispatcher opens a `reported`
                 incident (a drone is sent, a unit alerted); needs CONTROL

Who may see what (the view shows officers' live positions):
- It binds 127.0.0.1 unless told otherwise.
- Host allow-list (DNS rebinding): a request whose Host header is not the bound address, a
  loopback name, this machine's name, an IP literal (when bound to every interface) or a name
  given with `allowed_hosts` is refused 421, so a web page whose name an attacker re-points at
  127.0.0.1 cannot read the view from a browser on this machine.
- Access (`WebAccess`): each route needs a `Permission`; a request holds the permissions of its
  token (`Authorization: Bearer TOKEN`, or the cookie set by opening `/?token=TOKEN` once). With no
  token configured, anyone who can connect holds VIEW (loopback only by default); with one, a
  request without it gets 401 and one with a wrong one 403. CONTROL is granted only by a token
  that lists it (`--web-control-token`; it grants VIEW too): routes that change the run declare
  `needs=Permission.CONTROL` in `add_route` (POST /alarms) and are refused to everyone else.
  With only a control token, anyone who can connect still holds VIEW.

Only the methods a route declares are served (others 405), unknown paths are 404, malformed
requests 400; a failing request or a vanished client never reaches the run (each connection's
errors stay in its handler).

    view = LiveWebView(get_state, plan)      # get_state() -> LiveState
    url = await view.start()                 # RunError if the address cannot be bound
    await view.serve(stop)                   # until stop is set, then closes every connection
"""
from __future__ import annotations

import argparse
import asyncio
import enum
import hmac
import html
import ipaddress
import json
import logging
import os
import secrets
import socket
from collections.abc import Awaitable
from dataclasses import asdict, dataclass, field, replace
from http.cookies import CookieError, SimpleCookie
from typing import Callable
from urllib.parse import parse_qs, urlencode, urlsplit

from common.geo import outer_rings_latlon
from runloop.errors import RunError
from runloop.live import LiveState, RouteLine, live_state, sortie_route

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
REQUEST_TIMEOUT_S = 10.0  # a client that does not finish its request head in time is dropped
WRITE_TIMEOUT_S = 5.0  # a client that does not read (SSE) is dropped rather than buffered for
MAX_HEADER_LINES = 100
MAX_LINE_BYTES = 8192
# An unchanged state is sent again this often: it keeps proxies from timing the stream out and
# tells the page the run is still there (it calls a silence of 3x this "no update").
RESEND_S = 5.0


class Permission(enum.Enum):
    """What a request may do: VIEW reads the live state; CONTROL changes the run (POST /alarms)."""

    VIEW = "view"
    CONTROL = "control"


VIEW_ONLY = frozenset({Permission.VIEW})
TOKEN_ENV = "PATROL_WEB_TOKEN"  # the token from the environment, kept out of the process list
CONTROL_TOKEN_ENV = "PATROL_WEB_CONTROL_TOKEN"
MAX_BODY_BYTES = 16_000  # a POSTed alarm; anything larger is refused 413 unread
TOKEN_BYTES = 16  # a generated token: 128 bits, URL-safe


@dataclass(frozen=True)
class WebAccess:
    """The tokens the view accepts and what each grants. No tokens: every client that can connect
    may VIEW (and nobody may CONTROL)."""

    tokens: dict[str, frozenset[Permission]] = field(default_factory=dict)
    anonymous_view: bool = False  # only a control token: anyone who can connect still may VIEW

    @classmethod
    def view_token(cls, token: str | None) -> "WebAccess":
        if token is None:
            return cls()
        _check_token(token, "web token")
        return cls({token: VIEW_ONLY})

    def with_control_token(self, token: str | None) -> "WebAccess":
        """Also accept `token`, granting CONTROL (and VIEW)."""
        if token is None:
            return self
        _check_token(token, "web control token")
        if token in self.tokens:
            raise RunError("web control token: must differ from the view token")
        return WebAccess({**self.tokens, token: frozenset(Permission)}, anonymous_view=self.open)

    @property
    def open(self) -> bool:
        return not self.tokens

    def granted(self, token: str | None) -> frozenset[Permission] | None:
        """The permissions a request with `token` holds; None for a token that is not ours."""
        if self.open:
            return VIEW_ONLY
        if token is None:
            return VIEW_ONLY if self.anonymous_view else frozenset()
        for known, grants in self.tokens.items():  # compare_digest: no timing hint about the token
            if hmac.compare_digest(known.encode(), token.encode()):
                return grants
        return None


def _check_token(token: str, what: str) -> None:
    if not token.strip() or any(c.isspace() or c in ';,"\\' for c in token):
        raise RunError(f"{what}: must be non-empty, without spaces, quotes, commas, semicolons "
                       "or backslashes (it travels in a header and a cookie)")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::")


def host_name(host_header: str) -> str:
    """The host of a Host header, without port or IPv6 brackets, lower case ('' if malformed)."""
    text = host_header.strip().lower()
    if text.startswith("["):
        name, sep, _ = text[1:].partition("]")
        return name if sep else ""
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def default_allowed_hosts(bound_host: str, extra: tuple[str, ...] = ()) -> frozenset[str]:
    """The names a browser may use to reach a view bound to `bound_host`: the bound address, the
    loopback names, this machine's names when bound beyond loopback, and `extra`."""
    names = {bound_host.lower(), "localhost", "127.0.0.1", "::1", *(h.lower() for h in extra)}
    if not is_loopback(bound_host):  # not getfqdn(): a DNS lookup that can stall start-up in the field
        names.add(socket.gethostname().lower())
    return frozenset(n for n in names if n)


@dataclass(frozen=True)
class Route:
    handler: Callable[..., Awaitable[None]]  # (writer, head_only) -> None; with a body: (writer, request)
    needs: Permission = Permission.VIEW
    methods: tuple[str, ...] = ("GET", "HEAD")
    body_limit: int = 0  # > 0: the request body (Content-Length, at most this) is read for the handler


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Dock:
    dock_id: str
    lat: float
    lon: float


@dataclass(frozen=True)
class PlanLayer:
    """What does not move during a run: the cells to patrol, the planned routes, the dock."""

    cells: dict[str, list[list[tuple[float, float]]]] = field(default_factory=dict)  # id -> rings of (lat, lon)
    routes: tuple[RouteLine, ...] = ()
    docks: tuple[Dock, ...] = ()

    def to_jsonable(self) -> dict:
        return asdict(self)


def plan_layer(plan, grids, dock, drones) -> PlanLayer:
    """The plan layer of a PatrolRun: its planned cells, the sorties each drone will fly
    (runloop.drones.DroneOps records) as lat/lon polylines from the missions, and the dock."""
    cells = {g: outer_rings_latlon(grids.cell(g).polygon_wgs84) for g in sorted(plan.cells)}
    routes = tuple(sortie_route(rec.drone_id, sortie, (dock.lat, dock.lon))
                   for rec in drones.drones.values() for sortie in rec.sorties)
    return PlanLayer(cells, routes, (Dock(dock.grid_id, dock.lat, dock.lon),))


def parse_web_address(text: str) -> tuple[str, int]:
    """`[HOST:]PORT` -> (host, port); the host defaults to 127.0.0.1 (this machine only).

    >>> parse_web_address("8765")
    ('127.0.0.1', 8765)
    >>> parse_web_address("0.0.0.0:80")
    ('0.0.0.0', 80)
    """
    host, sep, port_text = text.strip().rpartition(":")
    host = host.strip("[]") if sep else DEFAULT_HOST
    try:
        port = int(port_text)
    except ValueError:
        raise RunError(f"web address {text!r}: the port {port_text!r} is not a number "
                       f"([HOST:]PORT, e.g. 8765)") from None
    if not 0 <= port <= 65535:
        raise RunError(f"web address {text!r}: the port {port} is outside 0-65535")
    if sep and not host:
        raise RunError(f"web address {text!r}: empty host before ':' (write just the port for 127.0.0.1)")
    return host, port


def web_address_arg(text: str) -> tuple[str, int]:
    """argparse `type=` for --web: a bad address is a usage error naming what is wrong."""
    try:
        return parse_web_address(text)
    except RunError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class LiveWebView:
    def __init__(self, get_state: Callable[[], LiveState], plan: PlanLayer | None = None,
                 host: str = DEFAULT_HOST, port: int = 0, push_every_wall_s: float = 0.5, title: str = "patrol",
                 access: WebAccess | None = None, allowed_hosts: tuple[str, ...] = ()):
        self.get_state = get_state
        self.plan = plan or PlanLayer()
        self.host = host
        self.port = port
        self.access = access or WebAccess()
        self.allowed_hosts = default_allowed_hosts(host, allowed_hosts)
        self.routes: dict[str, Route] = {"/": Route(self._index), "/index.html": Route(self._index),
                                         "/state.json": Route(self._state), "/events": Route(self._events)}
        self.push_every_wall_s = push_every_wall_s
        self.title = title
        self._server: asyncio.base_events.Server | None = None
        self._closing = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._page = _PAGE.replace("__TITLE__", html.escape(title)).encode()
        self._plan_json = json.dumps(self.plan.to_jsonable(), separators=(",", ":"))

    def add_route(self, path: str, handler: Callable[..., Awaitable[None]], *,
                  needs: Permission = Permission.VIEW, methods: tuple[str, ...] = ("GET", "HEAD"),
                  body_limit: int = 0) -> None:
        """Serve `handler(writer, head_only)` at `path` to requests holding `needs`; with a
        `body_limit`, `handler(writer, request)` with the request's body read (at most that)."""
        self.routes[path] = Route(handler, needs, tuple(m.upper() for m in methods), body_limit)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def cookie_name(self) -> str:
        return f"patrol_web_token_{self.port}"  # cookies ignore ports: one per view on this host

    async def start(self) -> str:
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=MAX_LINE_BYTES)
        except OSError as exc:
            if isinstance(exc, socket.gaierror):
                reason = f"no such host ({exc.strerror})"
            else:  # "Address already in use", not asyncio's wrapping of it
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise RunError(f"cannot serve the live web view on {self.host}:{self.port}: {reason}") from exc
        self.port = self._server.sockets[0].getsockname()[1]
        return self.url

    async def serve(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, then close every connection (open SSE streams included)."""
        if self._server is None:
            await self.start()
        try:
            await stop.wait()
        finally:
            await self.close()

    async def close(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.close()
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), WRITE_TIMEOUT_S)
            except TimeoutError:
                log.warning("live web view: connections still open after %.0f s", WRITE_TIMEOUT_S)
            self._server = None

    # ------------------------------------------------------------------ HTTP
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            request = await self._read_request(reader)
            if request is None:
                return
            if isinstance(request, int):
                await self._respond(writer, request, "text/plain", _REASONS[request].encode() + b"\n")
                return
            refusal = self._refusal(request)
            if refusal is not None:
                status, why, extra = refusal
                await self._respond(writer, status, "text/plain", why.encode() + b"\n", extra=extra)
                return
            if "token" in request.query and not self.access.open:  # a login: keep the token in a cookie, not in the address bar
                rest = {k: v for k, v in request.query.items() if k != "token"}
                location = request.path + ("?" + urlencode(rest, doseq=True) if rest else "")
                cookie = (f"{self.cookie_name}={request.query['token'][-1]}; Path=/; HttpOnly; "
                          f"SameSite=Strict")
                await self._respond(writer, 303, "text/plain", b"logged in\n",
                                    extra={"Location": location, "Set-Cookie": cookie})
                return
            route = self.routes[request.path]
            if route.body_limit:  # read only now: a refused request's body is never read
                body = await self._read_body(reader, request, route.body_limit)
                if isinstance(body, tuple):
                    await self._respond(writer, body[0], "text/plain", body[1].encode() + b"\n")
                    return
                await route.handler(writer, replace(request, body=body))
                return
            await route.handler(writer, request.method == "HEAD")
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away or stalled: nothing to tell anyone
        except Exception:  # a bug in one request must not end the run
            log.exception("live web view: request failed")
        finally:
            self._writers.discard(writer)
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), WRITE_TIMEOUT_S)
            except (ConnectionError, TimeoutError, OSError):
                pass

    def _refusal(self, request: Request) -> tuple[int, str, dict] | None:
        """Why this request is not served, as (status, reason, extra headers); None to serve it.
        Checked in this order: the Host (so a rebound name learns nothing, not even which paths
        exist), then the path and method, then the token and what it grants."""
        host_header = request.headers.get("host")
        if host_header is None:
            return 400, "no Host header (HTTP/1.1 requires one)", {}
        name = host_name(host_header)
        if not self._host_allowed(name):
            return 421, (f"Host {host_header!r} is not a name this view answers to "
                         f"(start it with --web-allow-host {name or 'NAME'} to allow it)"), {}
        route = self.routes.get(request.path)
        if route is None:
            return 404, f"no page {request.path}; try / or /state.json", {}
        if request.method not in route.methods:
            allowed = ", ".join(route.methods)
            return 405, f"{request.method} not allowed; {allowed}", {"Allow": allowed}
        token = self._token_of(request)
        granted = self.access.granted(token)
        if granted is None:
            return 403, "wrong token", {}
        if route.needs not in granted:
            if token is None:
                return 401, ("this view needs a token: open /?token=TOKEN once, or send "
                             "'Authorization: Bearer TOKEN'"), {"WWW-Authenticate": 'Bearer realm="patrol"'}
            return 403, f"this token does not grant {route.needs.value} ({request.method} {request.path})", {}
        return None

    def _host_allowed(self, name: str) -> bool:
        if not name:
            return False
        if name in self.allowed_hosts:
            return True
        if is_wildcard(self.host):  # bound to every interface: any of this machine's addresses,
            try:                    # which a browser can only have reached by number, not by a name
                ipaddress.ip_address(name)
                return True
            except ValueError:
                return False
        return False

    def _token_of(self, request: Request) -> str | None:
        """The request's token: ?token= (a login), else the Authorization header, else our cookie."""
        if "token" in request.query:
            return request.query["token"][-1]
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        try:
            morsel = SimpleCookie(request.headers.get("cookie", "")).get(self.cookie_name)
        except CookieError:
            return None
        return morsel.value if morsel is not None else None

    async def _read_request(self, reader) -> Request | int | None:
        """The request head, an error status for a malformed request, or None if the client left."""
        headers: dict[str, str] = {}
        try:
            line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT_S)
            if not line:
                return None
            parts = line.decode("latin-1").split()
            for _ in range(MAX_HEADER_LINES):
                header = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT_S)
                if header in (b"\r\n", b"\n", b""):
                    break
                name, sep, value = header.decode("latin-1").partition(":")
                if not sep:
                    return 400
                name = name.strip().lower()
                if name == "host" and "host" in headers:
                    return 400  # two Host headers: which one the browser meant is anyone's guess
                headers[name] = value.strip()
            else:
                return 431
        except (ValueError, asyncio.LimitOverrunError):  # a line longer than MAX_LINE_BYTES
            return 431
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return 400
        target = urlsplit(parts[1])
        return Request(parts[0].upper(), target.path or "/", parse_qs(target.query), headers)

    @staticmethod
    async def _read_body(reader, request: Request, limit: int) -> bytes | tuple[int, str]:
        """The body by Content-Length, or (status, why) when there is none or it is too large."""
        if "chunked" in request.headers.get("transfer-encoding", "").lower():
            return 411, "send the body with a Content-Length (no chunked encoding)"
        try:
            length = int(request.headers.get("content-length", ""))
        except ValueError:
            return 411, "a Content-Length is needed"
        if not 0 <= length <= limit:
            return 413, f"body of {length} bytes; at most {limit}"
        return await asyncio.wait_for(reader.readexactly(length), REQUEST_TIMEOUT_S)

    async def _respond(self, writer, status: int, content_type: str, body: bytes, head_only: bool = False,
                       extra: dict | None = None) -> None:
        headers = {"Content-Type": content_type, "Content-Length": str(len(body)), **_SECURITY_HEADERS,
                   "Connection": "close", **(extra or {})}
        head = f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(head.encode("latin-1") + b"\r\n" + (b"" if head_only else body))
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)

    async def _index(self, writer, head_only: bool) -> None:
        await self._respond(writer, 200, "text/html; charset=utf-8", self._page, head_only)

    def _live_json(self) -> str:
        return json.dumps(self.get_state().to_jsonable(), separators=(",", ":"), allow_nan=False, default=str)

    async def _state(self, writer, head_only: bool) -> None:
        try:
            live = self._live_json()
        except Exception as exc:  # the run's objects mid-change, or a bug: this request fails, the run goes on
            log.warning("live web view: no state: %r", exc)
            await self._respond(writer, 500, "text/plain", f"no live state: {exc!r}\n".encode(), head_only)
            return
        body = f'{{"live":{live},"plan":{self._plan_json}}}'.encode()
        await self._respond(writer, 200, "application/json", body, head_only)

    async def _events(self, writer, head_only: bool) -> None:
        head = ("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in _SECURITY_HEADERS.items()) + "Connection: close\r\n\r\n")
        writer.write(head.encode())
        if head_only:
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
            return
        writer.write(b"retry: 2000\n\n")
        last = None
        quiet_s = 0.0
        while not self._closing.is_set():
            try:
                live = self._live_json()
            except Exception as exc:
                log.warning("live web view: no state: %r", exc)
                live = last
            if live is not None and (live != last or quiet_s >= RESEND_S):
                writer.write(f"data: {live}\n\n".encode())
                last, quiet_s = live, 0.0
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
            try:
                await asyncio.wait_for(self._closing.wait(), self.push_every_wall_s)
            except TimeoutError:
                quiet_s += self.push_every_wall_s


@dataclass(frozen=True)
class WebOptions:
    """`patrol run/demo --web [HOST:]PORT --web-token TOKEN --web-allow-host NAME...`."""

    host: str = DEFAULT_HOST
    port: int = 0
    token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    control_token: str | None = None  # grants CONTROL: POST /alarms


def web_access(host: str, token: str | None) -> tuple[WebAccess, str | None]:
    """The access of a view bound to `host`: the given token (VIEW only); none on loopback; a
    generated one when bound beyond loopback without one. Returns (access, generated token)."""
    if token is None and not is_loopback(host):
        token = secrets.token_urlsafe(TOKEN_BYTES)
        return WebAccess.view_token(token), token
    return WebAccess.view_token(token), None


async def start_web_view(run, options: WebOptions) -> LiveWebView:
    """The web stage of a PatrolRun (after its drones, recorder and world exist); prints the URL
    (with the token when it was generated here, the only place it is shown)."""
    host = options.host
    access, generated = web_access(host, options.token)
    access = access.with_control_token(options.control_token)
    view = LiveWebView(lambda: live_state(run.clock(), run.drones, run.recorder, run.world),
                       plan_layer(run.plan, run.grids, run.dock, run.drones), host=host, port=options.port,
                       title=f"patrol {run.scenario.name}", access=access, allowed_hosts=options.allowed_hosts)
    if getattr(run, "dispatcher", None) is not None:
        view.add_route("/alarms", _alarm_webhook(view, run), needs=Permission.CONTROL, methods=("POST",),
                       body_limit=MAX_BODY_BYTES)
    url = await view.start()
    if generated:
        print(f"live web view: {url}?token={generated}  (token generated for this run: "
              f"{host} is reachable beyond this machine)", flush=True)
    elif not access.open and not access.anonymous_view:
        print(f"live web view: {url}  (open {url}?token=TOKEN once with your --web-token)", flush=True)
    else:
        print(f"live web view: {url}", flush=True)
    return view


def _alarm_webhook(view: LiveWebView, run):
    """POST /alarms[?source=NAME]: a patrol.alarm/1 body (docs/mqtt-api.md) goes to the run's
    dispatcher as if sent on patrol/alarms/NAME (default source `webhook`). 201 with the incident
    id when opened, 200 when that alarm is already an incident, 400 naming what is wrong."""
    from dispatch.errors import DispatchError
    from dispatch.schemas import AlarmMessage, parse
    from dispatch.topics import check_id

    async def handle(writer, request: Request) -> None:
        try:
            source = check_id(request.query.get("source", ["webhook"])[-1], "alarm source")
            if "json" not in request.headers.get("content-type", "application/json"):
                raise DispatchError("send the alarm as application/json")
            alarm = parse(AlarmMessage, request.body, "POST /alarms").to_alarm(source)
            await asyncio.wait_for(run.dispatcher.ready.wait(), REQUEST_TIMEOUT_S)
            incident_id, opened = run.dispatcher.submit_alarm(alarm)
        except DispatchError as exc:
            await view._respond(writer, 400, "text/plain", f"{exc}\n".encode())
            return
        run.store.add(run.clock(), "alarm_received", incident_id, via="webhook", opened=opened)
        body = json.dumps({"incident_id": incident_id, "opened": opened}).encode()
        await view._respond(writer, 201 if opened else 200, "application/json", body)

    return handle


_REASONS = {200: "OK", 201: "Created", 303: "See Other", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 411: "Length Required", 413: "Content Too Large",
            421: "Misdirected Request",
            431: "Request Header Fields Too Large", 500: "Internal Server Error"}
# Every answer: nothing cached (live positions), the page not framed by another site, the token
# in a login URL not leaked in a Referer, no content sniffing.
_SECURITY_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                     "X-Content-Type-Options": "nosniff"}


# One self-contained page: the map is SVG drawn from /state.json (no tiles: the field has no
# internet), in a local east/north frame around the plan so distances look right at any latitude.
_PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__ live</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>
body{font:14px system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{display:flex;gap:1.5em;align-items:baseline;padding:.5em 1em;background:#1f2d3d;color:#fff}
header h1{font-size:1.1em;margin:0} #conn{margin-left:auto;font-size:.9em}
#conn.live{color:#8fe38f} #conn.polling{color:#ffd479} #conn.down{color:#ff8a80}
main{display:flex;flex-wrap:wrap;gap:1em;padding:1em;align-items:flex-start}
#mapbox{flex:3 1 560px;min-width:320px} #map{display:block;width:100%;height:auto;max-height:calc(100vh - 90px);background:#f6f4ee;border:1px solid #bbb}
aside{flex:2 1 340px;min-width:300px} table{border-collapse:collapse;width:100%;margin-bottom:1em;font-size:13px}
th,td{text-align:left;padding:2px 6px;border-bottom:1px solid #ddd} th{background:#eee}
td.num{text-align:right} tr.lost td{color:#b00020} .low{color:#b00020;font-weight:bold}
h2{font-size:1em;margin:.3em 0} tbody tr{cursor:pointer} tbody tr:hover{background:#eef3f8}
.st-escalated{color:#b00020;font-weight:bold} .st-unlocated,.st-pending,.st-alerting{color:#a66300}
.st-accepted{color:#1f5fa8} .st-arrived{color:#2e7d32} .st-resolved,.st-ended{color:#777} #waiting{color:#666;font-size:12px}
.legend{font-size:12px;color:#555;margin-top:.3em} .legend span{margin-right:1em}
svg text{font-size:11px;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
</style></head><body>
<header><h1>__TITLE__</h1><span>t = <b id="t">-</b> s</span><span id="summary"></span><span id="conn" class="down">connecting</span></header>
<main><div id="mapbox"><svg id="map" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 800 560">
<g id="cells"></g><g id="routes"></g><g id="replans"></g><g id="docks"></g><g id="trails"></g><g id="links"></g><g id="scripted"></g>
<g id="units"></g><g id="incidents"></g><g id="drones"></g></svg>
<div class="legend"><span>&#9679; drone (line: heading)</span><span>&#9670; incident (colour: kind)</span>
<span>&#9632; unit</span><span>&#9675; scripted incident (true place)</span><span>&#9650; dock</span>
<span>lines: flown lately (solid), sortie being flown (dashed), rest of the plan (faint)</span><span>wheel: zoom, drag: pan, double-click: fit all, click a table row: centre on it</span></div></div>
<aside><h2>Drones</h2><table id="drone-table"><thead><tr><th>drone</th><th>mode</th><th>alt m</th><th>batt %</th>
<th>sortie</th><th>done</th><th>overwatch</th></tr></thead><tbody></tbody></table>
<h2>Incidents</h2><table id="incident-table"><thead><tr><th>incident</th><th>kind</th><th>status</th><th>unit</th></tr>
</thead><tbody></tbody></table><div id="waiting"></div>
<h2>Units</h2><table id="unit-table"><thead><tr><th>unit</th><th>status</th><th>position</th></tr></thead><tbody></tbody></table>
</aside></main>
<script>
"use strict";
const NS = "http://www.w3.org/2000/svg";
// Drone colours keep clear of the incident kinds' red, orange and purple.
const COLOURS = ["#1f77b4", "#2ca02c", "#17becf", "#8c564b", "#e377c2", "#1a237e", "#827717", "#00695c"];
const KIND = {fire: "#e4572e", smoke: "#8d8d8d", crowd: "#7b2cbf", stopped_vehicle: "#f2a900", intrusion: "#0077b6", reported: "#c2185b"};
const W = 800, H = 560;  // the map's viewBox; north up, one scale both ways
let plan = {cells: {}, routes: [], docks: []}, bounds = null, frame = null, lastUpdate = 0, lastLive = null, zoomed = false;
const droneColour = {};

function colourOf(id) {
  if (!(id in droneColour)) droneColour[id] = COLOURS[Object.keys(droneColour).length % COLOURS.length];
  return droneColour[id];
}
function el(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function esc(s) { return String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c])); }
// Local east/north metres around the plan's centre (an equirectangular frame: exact enough over a city).
function en(lat, lon) {
  return [(lon - frame.lon0) * Math.cos(frame.lat0 * Math.PI / 180) * 111320, (lat - frame.lat0) * 110574];
}
function xy(lat, lon) {
  const [e, n] = en(lat, lon);
  return [W / 2 + (e - bounds.cx) * bounds.scale, H / 2 - (n - bounds.cy) * bounds.scale];
}
function planPoints() {
  const pts = [];
  for (const rings of Object.values(plan.cells)) for (const ring of rings) pts.push(...ring);
  for (const r of plan.routes) pts.push(...r.points);
  for (const d of plan.docks) pts.push([d.lat, d.lon]);
  return pts;
}
function livePoints(live) {
  const pts = [];
  for (const d of live.drones) if (d.lat !== null) pts.push([d.lat, d.lon]);
  for (const i of live.incidents) if (i.lat !== null) pts.push([i.lat, i.lon]);
  for (const u of live.units) pts.push([u.lat, u.lon]);
  for (const s of live.scripted) if (s.lat !== null) pts.push([s.lat, s.lon]);
  return pts;
}
// The map fits the plan and everything seen so far; it only grows, so markers do not jump about.
function fit(points) {
  if (!points.length) return false;
  if (!frame) {
    let la = 0, lo = 0; for (const [a, b] of points) { la += a; lo += b; }
    frame = {lat0: la / points.length, lon0: lo / points.length};
  }
  let [e0, n0, e1, n1] = bounds ? [bounds.e0, bounds.n0, bounds.e1, bounds.n1] : [Infinity, Infinity, -Infinity, -Infinity];
  let grew = !bounds;
  for (const [lat, lon] of points) {
    const [e, n] = en(lat, lon);
    if (e < e0) { e0 = e; grew = true; } if (e > e1) { e1 = e; grew = true; }
    if (n < n0) { n0 = n; grew = true; } if (n > n1) { n1 = n; grew = true; }
  }
  if (!grew) return false;
  if (zoomed) { Object.assign(bounds, {e0, e1, n0, n1}); return false; }  // the operator's zoom stays
  const pad = 30, scale = Math.min((W - 2 * pad) / Math.max(e1 - e0, 50), (H - 2 * pad) / Math.max(n1 - n0, 50));
  bounds = {e0, e1, n0, n1, scale, cx: (e0 + e1) / 2, cy: (n0 + n1) / 2};
  return true;
}
// Sorties planned again during the run (a drone's unseen cells after a battery swap) come with the
// live state: the plan layer only knows the sorties planned before take-off.
function drawReplans(live) {
  const g = document.getElementById("replans"); g.replaceChildren();
  for (const r of live.replans || []) {
    const l = el("polyline", {points: pointsAttr(r.points), fill: "none", stroke: colourOf(r.drone_id), "stroke-width": 1,
                              "stroke-opacity": 0.45, class: "route replan", id: "route-" + r.drone_id + "-" + r.sortie_id,
                              "data-drone": r.drone_id, "data-sortie": r.sortie_id});
    l.appendChild(el("title", {}, `${r.drone_id} ${r.sortie_id} (re-planned)`)); g.appendChild(l);
  }
}
function pointsAttr(pts) { return pts.map(([a, b]) => xy(a, b).map(v => v.toFixed(1)).join(",")).join(" "); }
function drawPlan() {
  const cells = document.getElementById("cells"), routes = document.getElementById("routes"), docks = document.getElementById("docks");
  cells.replaceChildren(); routes.replaceChildren(); docks.replaceChildren();
  for (const [gid, rings] of Object.entries(plan.cells)) {
    for (const ring of rings) {
      const p = el("polygon", {points: pointsAttr(ring), fill: "rgba(46,139,87,0.12)", stroke: "#7a7a7a", "stroke-width": 0.8});
      p.appendChild(el("title", {}, gid)); cells.appendChild(p);
    }
  }
  for (const r of plan.routes) {
    const l = el("polyline", {points: pointsAttr(r.points), fill: "none", stroke: colourOf(r.drone_id), "stroke-width": 1,
                              "stroke-opacity": 0.45, class: "route", "data-drone": r.drone_id,
                              "data-sortie": r.sortie_id});
    l.appendChild(el("title", {}, `${r.drone_id} ${r.sortie_id} (planned)`)); routes.appendChild(l);
  }
  for (const d of plan.docks) {
    const [x, y] = xy(d.lat, d.lon);
    const g = el("g", {id: "dock-" + d.dock_id, class: "marker", "data-x": x, "data-y": y,
                       transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`});
    g.appendChild(el("polygon", {points: "0,-8 7,6 -7,6", fill: "#111"}));
    g.appendChild(el("text", {x: 10, y: 4, class: "label"}, d.dock_id));
    g.appendChild(el("title", {}, "dock " + d.dock_id)); docks.appendChild(g);
  }
}
function marker(layer, id, lat, lon, build) {
  const [x, y] = xy(lat, lon);
  const g = el("g", {id, class: "marker", "data-lat": lat, "data-lon": lon, "data-x": x, "data-y": y,
                     transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`});
  build(g); layer.appendChild(g);
}
// Where each drone and unit has been lately (kept by the page: the last TRAIL_POINTS moves).
const TRAIL_POINTS = 300, trails = {};
const DONE = /resolved|ended|closed|cancel/;  // dispatch states after which a case needs nobody
function remember(id, lat, lon) {
  const t = trails[id] || (trails[id] = []), last = t[t.length - 1];
  if (!last || last[0] !== lat || last[1] !== lon) t.push([lat, lon]);
  if (t.length > TRAIL_POINTS) t.shift();
}
function drawTrails(live) {
  for (const d of live.drones) if (d.lat !== null) remember("drone-" + d.drone_id, d.lat, d.lon);
  for (const u of live.units) remember("unit-" + u.unit_id, u.lat, u.lon);
  const layer = document.getElementById("trails");
  layer.replaceChildren();
  for (const [id, pts] of Object.entries(trails)) {
    if (pts.length < 2) continue;
    const drone = id.startsWith("drone-");
    layer.appendChild(el("polyline", {points: pointsAttr(pts), fill: "none", stroke: drone ? colourOf(id.slice(6)) : "#666",
                                      "stroke-width": drone ? 2.5 : 1, "stroke-dasharray": drone ? "" : "2 3",
                                      "stroke-opacity": 0.8, id: "trail-" + id}));
  }
}
function drawLive(live) {
  drawTrails(live);
  drawReplans(live);
  const layers = {};
  for (const n of ["links", "scripted", "units", "incidents", "drones"]) {
    layers[n] = document.getElementById(n); layers[n].replaceChildren();
  }
  const incAt = {};
  for (const i of live.incidents) if (i.lat !== null) incAt[i.incident_id] = [i.lat, i.lon];
  for (const s of live.scripted) {
    if (s.lat === null) continue;
    marker(layers.scripted, "scripted-" + s.name, s.lat, s.lon, g => {
      g.appendChild(el("circle", {r: 9, fill: "none", stroke: KIND[s.kind] || "#000", "stroke-width": 1.5,
                                  "stroke-dasharray": s.started_s === null ? "3 3" : ""}));
      g.appendChild(el("title", {}, `${s.name} (scripted ${s.kind}, ${s.started_s === null ? "not started" : "started at " + s.started_s.toFixed(0) + " s"})`));
    });
  }
  for (const u of live.units) {
    const inc = live.incidents.find(i => i.unit_id === u.unit_id && i.lat !== null && !DONE.test(i.status));
    if (inc) {
      const [x1, y1] = xy(u.lat, u.lon), [x2, y2] = xy(inc.lat, inc.lon);
      layers.links.appendChild(el("line", {x1, y1, x2, y2, stroke: "#444", "stroke-dasharray": "5 4", "stroke-width": 1.2}));
    }
    marker(layers.units, "unit-" + u.unit_id, u.lat, u.lon, g => {
      g.appendChild(el("rect", {x: -5, y: -5, width: 10, height: 10, fill: u.status === "available" ? "#2e7d32" : "#444",
                                stroke: "#fff"}));
      g.appendChild(el("text", {x: 8, y: 4, class: "label"}, `${u.unit_id} ${u.status}`));
    });
  }
  for (const i of live.incidents) {
    if (i.lat === null) continue;
    marker(layers.incidents, "incident-" + i.incident_id, i.lat, i.lon, g => {
      if (DONE.test(i.status)) g.setAttribute("opacity", 0.4);  // done: still on the map, faded
      g.appendChild(el("polygon", {points: "0,-9 9,0 0,9 -9,0", fill: KIND[i.kind] || "#000", stroke: "#000"}));
      const text = `${i.incident_id} ${i.status}${i.unit_id ? " \u2192 " + i.unit_id : ""}`;
      // A finished case keeps its faded marker but gives its label's room to the open ones (tooltip).
      g.appendChild(DONE.test(i.status) ? el("title", {}, text) : el("text", {x: 11, y: -6, class: "label"}, text));
    });
  }
  for (const d of live.drones) {
    if (d.lat === null) continue;
    for (const w of d.watching) if (incAt[w]) {
      const [x1, y1] = xy(d.lat, d.lon), [x2, y2] = xy(...incAt[w]);
      layers.links.appendChild(el("line", {x1, y1, x2, y2, stroke: colourOf(d.drone_id), "stroke-width": 2}));
    }
    marker(layers.drones, "drone-" + d.drone_id, d.lat, d.lon, g => {
      const c = colourOf(d.drone_id), h = (d.heading_deg || 0) * Math.PI / 180;
      g.appendChild(el("line", {x1: 0, y1: 0, x2: (14 * Math.sin(h)).toFixed(1), y2: (-14 * Math.cos(h)).toFixed(1), stroke: c, "stroke-width": 2}));
      g.appendChild(el("circle", {r: 7, fill: c, stroke: d.link_ok ? "#fff" : "#b00020", "stroke-width": d.link_ok ? 1.5 : 3}));
      const batt = d.battery_pct === null ? "-" : d.battery_pct.toFixed(0) + "%";
      g.appendChild(el("text", {x: 10, y: 14, class: "label"}, `${d.drone_id} ${d.mode}${d.link_ok ? "" : "!"} ${batt}`));
    });
  }
}
// Labels go where they overlap no other label or marker: next to the marker if there is room,
// else stepped up or down with a leader line. Drones first: they matter most to an operator.
function declutter() {
  const boxes = [];
  const hits = b => boxes.some(o => b.x < o.x + o.w && o.x < b.x + b.w && b.y < o.y + o.h && o.y < b.y + b.h);
  const markers = [...document.querySelectorAll("#drones .marker, #incidents .marker, #units .marker, #docks .marker")];
  for (const g of markers) boxes.push({x: +g.dataset.x - 8, y: +g.dataset.y - 8, w: 16, h: 16});
  for (const g of markers) {
    const t = g.querySelector("text.label");
    if (!t) continue;
    for (const old of g.querySelectorAll("line.leader")) old.remove();
    const mx = +g.dataset.x, my = +g.dataset.y, w = t.getComputedTextLength() + 2, h = 13;
    const cands = [];
    for (let k = 0; k < 10; k++) for (const s of k ? [1, -1] : [1]) cands.push([10, 4 + s * k * h], [-10 - w, 4 + s * k * h]);
    let best = cands.find(([dx, dy]) => {
      const b = {x: mx + dx, y: my + dy - 10, w, h};
      return b.x >= 0 && b.x + b.w <= W && b.y >= 0 && b.y + b.h <= H && !hits(b);
    }) || cands[0];
    const [dx, dy] = best;
    t.setAttribute("x", dx.toFixed(1)); t.setAttribute("y", dy.toFixed(1));
    boxes.push({x: mx + dx, y: my + dy - 10, w, h});
    if (Math.abs(dy - 4) > h / 2) g.insertBefore(el("line", {x1: 0, y1: 0, x2: dx < 0 ? dx + w : dx, y2: dy - 4, stroke: "#888",
                                                             "stroke-width": 0.8, class: "leader"}), g.firstChild);
  }
}
function rows(tbodyId, items, cells, rowId, rowClass) {
  document.querySelector(`#${tbodyId} tbody`).innerHTML = items.map(it =>
    `<tr id="${esc(rowId(it))}" class="${rowClass ? rowClass(it) : ""}">` +
    cells(it).map(([v, cls]) => `<td class="${cls || ""}">${esc(v)}</td>`).join("") + "</tr>").join("");
}
function drawTables(live) {
  rows("drone-table", live.drones, d => [
    [d.drone_id], [d.mode + (d.link_ok ? "" : "!")], [d.alt_rel_m === null ? "-" : d.alt_rel_m.toFixed(0), "num"],
    [d.battery_pct === null ? "-" : d.battery_pct.toFixed(0), d.battery_pct !== null && d.battery_pct < 30 ? "num low" : "num"],
    [d.sortie || "-"], [`${d.done}/${d.total}`, "num"], [d.watching.join(", ")]], d => "row-drone-" + d.drone_id,
    d => d.link_ok ? "" : "lost");
  // Open cases first (as the run lists them), finished ones after: the ones needing someone on top.
  const cases = live.incidents.filter(i => !DONE.test(i.status)).concat(live.incidents.filter(i => DONE.test(i.status)));
  rows("incident-table", cases, i => [[i.incident_id], [i.kind], [i.status, "st-" + i.status], [i.unit_id]],
       i => "row-incident-" + i.incident_id);
  rows("unit-table", live.units, u => [[u.unit_id], [u.status], [`${u.lat.toFixed(5)},${u.lon.toFixed(5)}`]],
       u => "row-unit-" + u.unit_id);
  const waiting = live.scripted.filter(s => s.started_s === null).map(s => s.name);
  document.getElementById("waiting").textContent = waiting.length ? `scripted, not started yet: ${waiting.join(", ")}` : "";
  document.getElementById("t").textContent = live.t_s.toFixed(1);
  const open = live.incidents.filter(i => !DONE.test(i.status)).length;
  document.getElementById("summary").textContent =
    `${live.drones.filter(d => d.armed).length}/${live.drones.length} drones flying, ${open} open incidents, ${live.units.length} units`;
}
function update(live) {
  lastUpdate = Date.now(); lastLive = live;
  if (fit(planPoints().concat(livePoints(live)))) drawPlan();
  if (bounds) { drawLive(live); declutter(); emphasiseRoutes(live); }
  drawTables(live);
  document.body.dataset.t = live.t_s;
}
// The sortie a drone is flying now is drawn dashed and strong; the rest of the plan stays faint.
function emphasiseRoutes(live) {
  const now = new Set(live.drones.filter(d => d.sortie).map(d => d.drone_id + "/" + d.sortie));
  for (const l of document.querySelectorAll("#routes polyline, #replans polyline")) {
    const on = now.has(l.dataset.drone + "/" + l.dataset.sortie);
    l.setAttribute("stroke-width", on ? 1.5 : 1); l.setAttribute("stroke-opacity", on ? 0.9 : 0.35);
    l.setAttribute("stroke-dasharray", on ? "6 4" : "");
  }
}
// Zoom and pan redraw from the data at the new scale, so symbols and labels keep their size.
function redraw() {
  drawPlan();
  if (lastLive) { drawLive(lastLive); declutter(); emphasiseRoutes(lastLive); }
}
function mapPoint(evt) {  // mouse position in viewBox units (the SVG is letterboxed: "meet")
  const r = document.getElementById("map").getBoundingClientRect(), s = Math.min(r.width / W, r.height / H);
  return [(evt.clientX - r.left - (r.width - W * s) / 2) / s, (evt.clientY - r.top - (r.height - H * s) / 2) / s, s];
}
function zoomAt(px, py, k) {
  if (!bounds) return;
  const ge = bounds.cx + (px - W / 2) / bounds.scale, gn = bounds.cy - (py - H / 2) / bounds.scale;
  bounds.scale *= k;
  bounds.cx = ge - (px - W / 2) / bounds.scale; bounds.cy = gn + (py - H / 2) / bounds.scale;
  zoomed = true; redraw();
}
// A page left open after the run ended (or while the network is down) must not look live.
setInterval(() => {
  const quiet_s = (Date.now() - lastUpdate) / 1000;
  if (lastUpdate && quiet_s > 15) setConn(`no update for ${Math.round(quiet_s)} s (run ended or unreachable)`, "down");
}, 1000);
function setupZoom() {
  const map = document.getElementById("map");
  // A click on a table row centres the map on that drone, incident or unit.
  document.querySelector("aside").addEventListener("click", e => {
    const row = e.target.closest("tr[id^='row-']"), m = row && document.getElementById(row.id.slice(4));
    if (!m || !bounds) return;
    [bounds.cx, bounds.cy] = en(+m.dataset.lat, +m.dataset.lon);
    zoomed = true; redraw();
  });
  let drag = null, pending = false;
  map.addEventListener("wheel", e => { e.preventDefault(); const [px, py] = mapPoint(e); zoomAt(px, py, e.deltaY < 0 ? 1.25 : 0.8); },
                      {passive: false});
  map.addEventListener("mousedown", e => { drag = [e.clientX, e.clientY]; });
  window.addEventListener("mouseup", () => { drag = null; });
  window.addEventListener("mousemove", e => {
    if (!drag || !bounds) return;
    const s = mapPoint(e)[2];
    bounds.cx -= (e.clientX - drag[0]) / s / bounds.scale; bounds.cy += (e.clientY - drag[1]) / s / bounds.scale;
    drag = [e.clientX, e.clientY]; zoomed = true;
    if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; redraw(); }); }
  });
  map.addEventListener("dblclick", () => {
    zoomed = false; bounds = null;
    if (fit(planPoints().concat(lastLive ? livePoints(lastLive) : []))) redraw();
  });
}
function setConn(text, cls) { const c = document.getElementById("conn"); c.textContent = text; c.className = cls; }
async function fetchState() {
  const r = await fetch("/state.json", {cache: "no-store"});
  if (!r.ok) throw new Error("state.json: HTTP " + r.status);
  return r.json();
}
let polling = false;
async function poll() {
  if (polling) return; polling = true;
  for (;;) {
    try { update((await fetchState()).live); setConn("live (polling)", "polling"); }
    catch (e) { setConn(`disconnected: last update ${Math.round((Date.now() - lastUpdate) / 1000)} s ago`, "down"); }
    await new Promise(r => setTimeout(r, 2000));
  }
}
function listen() {
  if (!window.EventSource) { poll(); return; }
  const es = new EventSource("/events");
  let opened = false;
  es.onmessage = e => { opened = true; update(JSON.parse(e.data)); setConn("live", "live"); };
  // The browser reconnects a dropped stream by itself; a stream that never worked means polling.
  es.onerror = () => { if (!opened) { es.close(); poll(); } else setConn("reconnecting", "down"); };
}
async function start() {
  for (;;) {
    try { const s = await fetchState(); plan = s.plan; update(s.live); break; }
    catch (e) { setConn("waiting for the run", "down"); await new Promise(r => setTimeout(r, 2000)); }
  }
  listen();
}
setupZoom();
start();
</script></body></html>
"""
