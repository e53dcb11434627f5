"""The live web view of a run, on the guarded local server of common/httpd.py (token
permissions, Host allow-list, loopback by default — read its docstring for who may see what):

    /            the page (runloop/static/live.html, .css, .js: an SVG map, no tiles, no CDN)
    /state.json  the live state the terminal table shows (runloop.live.LiveState), positions
                 included, plus the plan layer: cells, planned sortie routes, dock
    /events      Server-Sent Events: the live state pushed whenever it changes; the page falls
                 back to polling /state.json when SSE is unavailable
    /alarms      POST a patrol.alarm/1 (docs/mqtt-api.md): the dispatcher opens a `reported`
                 incident (a drone is sent, a unit alerted); needs CONTROL (--web-control-token)
    /control     {"control": true|false}: whether this request's token may act (the page then
                 shows its console's buttons)
    /control/command  POST {command, ...arguments} of a patrol.operator-command/1: sent over MQTT
                 on patrol/operator/commands like any other console's, answered with the run's
                 result: 200 {ok: true, detail} or 409 {ok: false, error}; needs CONTROL

    view = LiveWebView(get_state, plan)      # get_state() -> LiveState
    url = await view.start()                 # RunError if the address cannot be bound
    await view.serve(stop)                   # until stop is set, then closes every connection
"""
from __future__ import annotations

import asyncio
import html
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common.geo import outer_rings_latlon
from common.httpd import (
    DEFAULT_HOST,
    REQUEST_TIMEOUT_S,
    SECURITY_HEADERS,
    TOKEN_BYTES,
    WRITE_TIMEOUT_S,
    Permission,
    Request,
    WebAccess,
    WebServer,
    WebServerError,
    is_loopback,
)
from common.httpd import parse_web_address as _parse_web_address
from runloop.errors import RunError
from runloop.live import LiveState, RouteLine, live_state, sortie_route

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
MAX_BODY_BYTES = 16_000  # a POSTed alarm; anything larger is refused 413 unread
# An unchanged state is sent again this often: it keeps proxies from timing the stream out and
# tells the page the run is still there (it calls a silence of 3x this "no update").
RESEND_S = 5.0

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
    """`[HOST:]PORT` -> (host, port), the host 127.0.0.1 unless given; RunError naming what is wrong.

    >>> parse_web_address("8765")
    ('127.0.0.1', 8765)
    """
    try:
        return _parse_web_address(text)
    except WebServerError as exc:
        raise RunError(str(exc)) from None


class LiveWebView(WebServer):
    def __init__(self, get_state: Callable[[], LiveState], plan: PlanLayer | None = None,
                 host: str = DEFAULT_HOST, port: int = 0, push_every_wall_s: float = 0.5, title: str = "patrol",
                 access: WebAccess | None = None, allowed_hosts: tuple[str, ...] = ()):
        super().__init__(host, port, access, allowed_hosts, name="live web view")
        self.get_state = get_state
        self.plan = plan or PlanLayer()
        self.push_every_wall_s = push_every_wall_s
        self.title = title
        self._plan_json = json.dumps(self.plan.to_jsonable(), separators=(",", ":"))
        page = {"__TITLE__": html.escape(title)}
        self.add_static("/", STATIC / "live.html", "text/html; charset=utf-8", substitute=page)
        self.add_static("/index.html", STATIC / "live.html", "text/html; charset=utf-8", substitute=page)
        self.add_static("/static/live.css", STATIC / "live.css", "text/css; charset=utf-8")
        self.add_static("/static/live.js", STATIC / "live.js", "text/javascript; charset=utf-8")
        self.add_route("/state.json", self._state)
        self.add_route("/events", self._events)
        self.add_route("/control", self._control, wants_request=True)

    async def start(self) -> str:
        try:
            return await super().start()
        except WebServerError as exc:
            raise RunError(str(exc)) from None

    def _live_json(self) -> str:
        return json.dumps(self.get_state().to_jsonable(), separators=(",", ":"), allow_nan=False, default=str)

    async def _state(self, writer, head_only: bool) -> None:
        try:
            live = self._live_json()
        except Exception as exc:  # the run's objects mid-change, or a bug: this request fails, the run goes on
            log.warning("live web view: no state: %r", exc)
            await self.respond(writer, 500, "text/plain", f"no live state: {exc!r}\n".encode(), head_only)
            return
        body = f'{{"live":{live},"plan":{self._plan_json}}}'.encode()
        await self.respond(writer, 200, "application/json", body, head_only)

    async def _control(self, writer, request: Request) -> None:
        """What this page's token may do: {"control": true} shows the console's buttons (they
        work only when an operator console is attached: `patrol run --web-control-token`)."""
        control = Permission.CONTROL in self.granted_to(request) and "/control/command" in self.routes
        await self.respond(writer, 200, "application/json", json.dumps({"control": control}).encode(),
                           request.method == "HEAD")

    async def _events(self, writer, head_only: bool) -> None:
        head = ("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in SECURITY_HEADERS.items()) + "Connection: close\r\n\r\n")
        writer.write(head.encode())
        if head_only:
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
            return
        writer.write(b"retry: 2000\n\n")
        last = None
        quiet_s = 0.0
        while not self.closing.is_set():
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
                await asyncio.wait_for(self.closing.wait(), self.push_every_wall_s)
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
    rider_page: object | None = None  # dispatch.riderapp.RiderPageConfig: the rider web app at /rider/


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
    try:
        access, generated = web_access(host, options.token)
        access = access.with_control_token(options.control_token)
    except WebServerError as exc:
        raise RunError(str(exc)) from None
    view = LiveWebView(lambda: live_state(run.clock(), run.drones, run.recorder, run.world),
                       plan_layer(run.plan, run.grids, run.dock, run.drones), host=host, port=options.port,
                       title=f"patrol {run.scenario.name}", access=access, allowed_hosts=options.allowed_hosts)
    if getattr(run, "dispatcher", None) is not None:
        view.add_route("/alarms", _alarm_webhook(view, run), needs=Permission.CONTROL, methods=("POST",),
                       body_limit=MAX_BODY_BYTES)
    from dispatch.riderapp import RiderPageConfig, add_rider_routes
    add_rider_routes(view, options.rider_page or RiderPageConfig())
    console = _operator_console(view, run) if getattr(run, "broker", None) is not None else None
    url = await view.start()
    if console is not None:  # its MQTT session lives as long as the view
        view.console_task = asyncio.get_running_loop().create_task(console.run(view.closing), name="web-console")
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
            await view.respond(writer, 400, "text/plain", f"{exc}\n".encode())
            return
        run.store.add(run.clock(), "alarm_received", incident_id, via="webhook", opened=opened)
        body = json.dumps({"incident_id": incident_id, "opened": opened}).encode()
        await view.respond(writer, 201 if opened else 200, "application/json", body)

    return handle


def _operator_console(view: LiveWebView, run):
    """The page's buttons: each action goes over the broker as an operator command (runloop/
    operator.py), exactly as any other console would send it, and comes back with the run's answer."""
    from runloop.operator import OperatorClient, OperatorError

    console = OperatorClient(run.broker, client_id="patrol-run-console")

    async def command(writer, request: Request) -> None:
        body = None
        if "json" in request.headers.get("content-type", ""):
            try:
                body = json.loads(request.body)
            except ValueError:
                body = None
        if not isinstance(body, dict) or not isinstance(body.get("command"), str):
            why = {"ok": False, "error": "send {\"command\": ..., arguments...} as application/json "
                                         "(docs/mqtt-api.md, operator commands)"}
            await view.respond(writer, 400, "application/json", json.dumps(why).encode())
            return
        body = {k: v for k, v in body.items() if k not in ("schema", "command_id", "ts")}
        try:
            result = await console.send(body, timeout_s=REQUEST_TIMEOUT_S - 1.0)
        except OperatorError as exc:  # the broker or the run did not answer
            await view.respond(writer, 504, "application/json", json.dumps({"ok": False, "error": str(exc)}).encode())
            return
        answer = {"ok": bool(result.get("ok")), "command": body["command"],
                  **({"detail": result.get("detail", "")} if result.get("ok") else {"error": result.get("error", "")})}
        await view.respond(writer, 200 if answer["ok"] else 409, "application/json", json.dumps(answer).encode())

    view.add_route("/control/command", command, needs=Permission.CONTROL, methods=("POST",), body_limit=MAX_BODY_BYTES)
    return console
