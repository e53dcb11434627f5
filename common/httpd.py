"""A small local HTTP server on asyncio (stdlib only) that guards every route with a token
permission and a Host allow-list: the base of the run's live view (runloop/web.py) and of the
pages the controller serves to riders. It serves what it is given (routes) and nothing else.

Who may see what (the pages show officers' live positions):
- It binds 127.0.0.1 unless told otherwise.
- Host allow-list (DNS rebinding): a request whose Host header is not the bound address, a
  loopback name, this machine's name, an IP literal (when bound to every interface) or a name
  given with `allowed_hosts` is refused 421, so a web page whose name an attacker re-points at
  127.0.0.1 cannot read the view from a browser on this machine.
- Access (`WebAccess`): each route needs a `Permission`; a request holds the permissions of its
  token (`Authorization: Bearer TOKEN`, or the cookie set by opening `/?token=TOKEN` once). With no
  token configured, anyone who can connect holds VIEW (loopback only by default); with one, a
  request without it gets 401 and one with a wrong one 403. CONTROL is granted only by a token
  that lists it: routes that change the run declare `needs=Permission.CONTROL` in `add_route`
  and are refused to everyone else. With only a control token, anyone who can connect still
  holds VIEW.

Only the methods a route declares are served (others 405), unknown paths are 404, malformed
requests 400; a failing request or a vanished client never reaches the caller (each
connection's errors stay in its handler).

    server = WebServer(host="127.0.0.1", port=0, access=WebAccess.view_token("tok"))
    server.add_route("/", handler)           # handler(writer, head_only)
    url = await server.start()               # WebServerError if the address cannot be bound
    await server.serve(stop)                 # until stop is set, then closes every connection
"""
from __future__ import annotations

import argparse
import asyncio
import enum
import hmac
import ipaddress
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

log = logging.getLogger(__name__)


class WebServerError(ValueError):
    """A web server cannot be configured or started; the message names what is wrong."""


DEFAULT_HOST = "127.0.0.1"
REQUEST_TIMEOUT_S = 10.0  # a client that does not finish its request head in time is dropped
WRITE_TIMEOUT_S = 5.0  # a client that does not read (SSE) is dropped rather than buffered for
MAX_HEADER_LINES = 100
MAX_LINE_BYTES = 8192


class Permission(enum.Enum):
    """What a request may do: VIEW reads (the live state, a page); CONTROL changes the run."""

    VIEW = "view"
    CONTROL = "control"


VIEW_ONLY = frozenset({Permission.VIEW})
TOKEN_BYTES = 16  # a generated token: 128 bits, URL-safe


@dataclass(frozen=True)
class WebAccess:
    """The tokens the view accepts and what each grants. No tokens: every client that can connect
    may VIEW (and nobody may CONTROL)."""

    tokens: dict[str, frozenset[Permission]] = field(default_factory=dict)
    anonymous_view: bool = False  # only a control token: anyone who can connect still may VIEW

    @classmethod
    def view_token(cls, token: str | None) -> WebAccess:
        if token is None:
            return cls()
        check_token(token, "web token")
        return cls({token: VIEW_ONLY})

    def with_control_token(self, token: str | None) -> WebAccess:
        """Also accept `token`, granting CONTROL (and VIEW)."""
        if token is None:
            return self
        check_token(token, "web control token")
        if token in self.tokens:
            raise WebServerError("web control token: must differ from the view token")
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


def check_token(token: str, what: str) -> None:
    if not token.strip() or any(c.isspace() or c in ';,"\\' for c in token):
        raise WebServerError(f"{what}: must be non-empty, without spaces, quotes, commas, semicolons "
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
    wants_request: bool = False  # the handler gets (writer, request) although no body is read


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""


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
        raise WebServerError(f"web address {text!r}: the port {port_text!r} is not a number "
                       f"([HOST:]PORT, e.g. 8765)") from None
    if not 0 <= port <= 65535:
        raise WebServerError(f"web address {text!r}: the port {port} is outside 0-65535")
    if sep and not host:
        raise WebServerError(f"web address {text!r}: empty host before ':' (write just the port for 127.0.0.1)")
    return host, port


def web_address_arg(text: str) -> tuple[str, int]:
    """argparse `type=` for --web: a bad address is a usage error naming what is wrong."""
    try:
        return parse_web_address(text)
    except WebServerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class WebServer:
    """The routes it is given, behind the Host allow-list and the token permissions."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = 0, access: WebAccess | None = None,
                 allowed_hosts: tuple[str, ...] = (), name: str = "web server"):
        self.host = host
        self.port = port
        self.access = access or WebAccess()
        self.allowed_hosts = default_allowed_hosts(host, allowed_hosts)
        self.name = name  # in errors and logs: "cannot serve the live web view on ..."
        self.routes: dict[str, Route] = {}
        self.closing = asyncio.Event()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def add_route(self, path: str, handler: Callable[..., Awaitable[None]], *,
                  needs: Permission = Permission.VIEW, methods: tuple[str, ...] = ("GET", "HEAD"),
                  body_limit: int = 0, wants_request: bool = False) -> None:
        """Serve `handler(writer, head_only)` at `path` to requests holding `needs`; with a
        `body_limit`, `handler(writer, request)` with the request's body read (at most that);
        with `wants_request`, `handler(writer, request)` without reading a body."""
        self.routes[path] = Route(handler, needs, tuple(m.upper() for m in methods), body_limit, wants_request)

    def granted_to(self, request: Request) -> frozenset[Permission]:
        """What the request's token grants (a route may show more to who may do more)."""
        return self.access.granted(self._token_of(request)) or frozenset()

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
            raise WebServerError(f"cannot serve the {self.name} on {self.host}:{self.port}: {reason}") from exc
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
        self.closing.set()
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.close()
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), WRITE_TIMEOUT_S)
            except TimeoutError:
                log.warning("%s: connections still open after %.0f s", self.name, WRITE_TIMEOUT_S)
            self._server = None

    # ------------------------------------------------------------------ HTTP
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            request = await self._read_request(reader)
            if request is None:
                return
            if isinstance(request, int):
                await self.respond(writer, request, "text/plain", REASONS[request].encode() + b"\n")
                return
            refusal = self._refusal(request)
            if refusal is not None:
                status, why, extra = refusal
                await self.respond(writer, status, "text/plain", why.encode() + b"\n", extra=extra)
                return
            if "token" in request.query and not self.access.open:  # a login: keep the token in a cookie, not in the address bar
                rest = {k: v for k, v in request.query.items() if k != "token"}
                location = request.path + ("?" + urlencode(rest, doseq=True) if rest else "")
                cookie = (f"{self.cookie_name}={request.query['token'][-1]}; Path=/; HttpOnly; "
                          f"SameSite=Strict")
                await self.respond(writer, 303, "text/plain", b"logged in\n",
                                    extra={"Location": location, "Set-Cookie": cookie})
                return
            route = self.routes[request.path]
            if route.body_limit:  # read only now: a refused request's body is never read
                body = await self._read_body(reader, request, route.body_limit)
                if isinstance(body, tuple):
                    await self.respond(writer, body[0], "text/plain", body[1].encode() + b"\n")
                    return
                await route.handler(writer, replace(request, body=body))
                return
            await route.handler(writer, request if route.wants_request else request.method == "HEAD")
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away or stalled: nothing to tell anyone
        except Exception:  # a bug in one request must not end the run
            log.exception("%s: request failed", self.name)
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

    async def respond(self, writer, status: int, content_type: str, body: bytes, head_only: bool = False,
                       extra: dict | None = None) -> None:
        headers = {"Content-Type": content_type, "Content-Length": str(len(body)), **SECURITY_HEADERS,
                   "Connection": "close", **(extra or {})}
        head = f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(head.encode("latin-1") + b"\r\n" + (b"" if head_only else body))
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)

    def add_static(self, path: str, file: Path, content_type: str, *, needs: Permission = Permission.VIEW,
                   substitute: dict[str, str] | None = None) -> None:
        """Serve the file (read once, now: a missing asset fails at start-up, not in a browser),
        with `substitute`'s placeholders replaced."""
        text = file.read_text(encoding="utf-8")
        for placeholder, value in (substitute or {}).items():
            text = text.replace(placeholder, value)
        body = text.encode()

        async def handler(writer, head_only: bool) -> None:
            await self.respond(writer, 200, content_type, body, head_only)

        self.add_route(path, handler, needs=needs)


REASONS = {200: "OK", 201: "Created", 303: "See Other", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 411: "Length Required", 413: "Content Too Large",
            421: "Misdirected Request",
            431: "Request Header Fields Too Large", 500: "Internal Server Error"}
# Every answer: nothing cached (live positions), the page not framed by another site, the token
# in a login URL not leaked in a Referer, no content sniffing.
SECURITY_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                     "X-Content-Type-Options": "nosniff"}
