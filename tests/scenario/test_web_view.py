"""The live web view of a run (runloop/web.py): its HTTP endpoints, and the page in a real headless
Chromium fed with a scripted live state (no patrol needed): drones with mode and battery,
incidents with state and unit, markers where they belong, updates as the state changes."""
from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from common.geo import LocalFrame, offset
from runloop import RunError
from runloop.live import DroneLive, IncidentLive, LiveState, ScriptedLive, UnitLive
from runloop.web import Dock, LiveWebView, Permission, PlanLayer, RouteLine, WebAccess, parse_web_address

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DOCK = (32.0, 119.58)


def at(north_m: float, east_m: float) -> tuple[float, float]:
    return offset(*DOCK, north_m, east_m)


def get_plan() -> PlanLayer:
    """Two square cells side by side east of the dock, one planned route over both."""
    def square(e0):
        return [[at(0, e0), at(0, e0 + 400), at(400, e0 + 400), at(400, e0), at(0, e0)]]
    route = (DOCK, at(50, 50), at(50, 750), at(350, 750), at(350, 50), DOCK)
    return PlanLayer({"DY-C0001": square(0), "DY-C0002": square(400)}, (RouteLine("drone01", "sortie01", route),),
                     (Dock("DOCK-NE", *DOCK),))


def get_drone(drone_id: str, north_m: float, east_m: float, **kw) -> DroneLive:
    lat, lon = at(north_m, east_m)
    fields = dict(drone_id=drone_id, mode="AUTO", link_ok=True, armed=True, lat=lat, lon=lon, alt_rel_m=60.0,
                  heading_deg=90.0, battery_pct=71.0, sortie="sortie01", done=0, total=2, watching=(), state="flying")
    fields.update(kw)
    return DroneLive(**fields)


def get_state(t_s: float = 12.5) -> LiveState:
    """drone01 flying east at (100 N, 200 E), drone02 in RTL with a lost link at (300 N, 700 E);
    a fire at (200 N, 500 E) alerted to M02; unit M02 at (20 N, -100 E); a crowd not started yet."""
    fire = at(200, 500)
    return LiveState(
        t_s=t_s,
        drones=(get_drone("drone01", 100, 200),
                get_drone("drone02", 300, 700, mode="RTL", link_ok=False, battery_pct=18.0, done=1, state="landing")),
        incidents=(IncidentLive("inc-fire-0001", "fire", "alerted", "M02", *fire),),
        units=(UnitLive("M02", "busy", *at(20, -100)),),
        scripted=(ScriptedLive("fire-1", "fire", *fire, 5.0), ScriptedLive("crowd-2", "crowd", *at(380, 100), None)))


class ScriptedRun:
    """Stands in for a PatrolRun: the view reads `state` whenever it serves or pushes."""

    def __init__(self, state: LiveState):
        self.state = state
        self.fail = False

    def get(self) -> LiveState:
        if self.fail:
            raise RuntimeError("recorder mid-update")
        return self.state


@contextmanager
def serve_in_thread(run: ScriptedRun, plan: PlanLayer, access: WebAccess | None = None):
    """The web view on its own event loop in a thread, so a blocking browser driver can talk to it."""
    box: dict = {}
    ready = threading.Event()

    async def main():
        view = LiveWebView(run.get, plan, push_every_wall_s=0.2, title="patrol test", access=access)
        box["url"] = await view.start()
        box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        await view.serve(box["stop"])

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True, name="web-view")
    thread.start()
    assert ready.wait(10), "the web view did not start"
    try:
        yield box["url"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)
        assert not thread.is_alive(), "the web view did not stop"


async def get_http(url: str, request: bytes, timeout_s: float = 5.0) -> tuple[int, dict, bytes]:
    """Send one raw request to the view; (status, headers, body)."""
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout_s)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def get_request(path: str, method: str = "GET", host: str = "127.0.0.1", headers: dict | None = None) -> bytes:
    """One request as a browser sends it: the Host it used, plus `headers`."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# ---------------------------------------------------------------------------------- HTTP
async def test_state_json_carries_the_live_state_and_the_plan():
    """/state.json: what the terminal table shows, with positions, plus the cells, routes and dock."""
    view = LiveWebView(lambda: get_state(), get_plan())
    url = await view.start()
    try:
        assert url.startswith("http://127.0.0.1:")
        status, headers, body = await get_http(url, get_request("/state.json"))
        assert status == 200 and headers["Content-Type"] == "application/json"
        data = json.loads(body)
        drones = {d["drone_id"]: d for d in data["live"]["drones"]}
        assert drones["drone02"]["mode"] == "RTL" and drones["drone02"]["link_ok"] is False
        assert drones["drone01"]["battery_pct"] == 71.0 and drones["drone01"]["lat"] == pytest.approx(at(100, 200)[0])
        assert data["live"]["incidents"][0] == {"incident_id": "inc-fire-0001", "kind": "fire", "status": "alerted",
                                                "unit_id": "M02", "lat": at(200, 500)[0], "lon": at(200, 500)[1]}
        assert sorted(data["plan"]["cells"]) == ["DY-C0001", "DY-C0002"]
        assert data["plan"]["routes"][0]["drone_id"] == "drone01" and len(data["plan"]["routes"][0]["points"]) == 6
        status, headers, body = await get_http(url, get_request("/"))
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert b"<svg" in body and b"http" not in body.replace(b"http://www.w3.org", b"")  # nothing fetched from outside
    finally:
        await view.close()


async def test_bad_requests_are_refused_and_the_view_keeps_serving():
    """Unknown path 404, POST 405 with Allow, garbage 400, an oversized header 431; a silent client
    and a client gone mid-stream do not stop others being served; HEAD has headers only."""
    view = LiveWebView(lambda: get_state(), get_plan())
    url = await view.start()
    try:
        assert (await get_http(url, get_request("/admin")))[0] == 404
        status, headers, _ = await get_http(url, get_request("/state.json", "POST"))
        assert status == 405 and headers["Allow"] == "GET, HEAD"
        assert (await get_http(url, b"\x16\x03\x01 hello\r\n\r\n"))[0] == 400
        assert (await get_http(url, b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n"))[0] == 431
        host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
        _, idle = await asyncio.open_connection(host, int(port))  # says nothing; must not block others
        status, _, body = await get_http(url, get_request("/state.json?x=1"))
        assert status == 200 and json.loads(body)["live"]["t_s"] == 12.5
        idle.close()
        status, headers, body = await get_http(url, get_request("/", "HEAD"))
        assert status == 200 and int(headers["Content-Length"]) > 1000 and body == b""
        _, dropped = await asyncio.open_connection(host, int(port))  # a page closed mid-stream
        dropped.write(get_request("/events"))
        await asyncio.sleep(0.1)
        dropped.transport.abort()
        await asyncio.sleep(0.3)
        assert (await get_http(url, get_request("/state.json")))[0] == 200
    finally:
        await view.close()


async def test_a_failing_state_is_a_500_for_that_request_only():
    """If the run's objects cannot be read, /state.json says so; the next request is served again."""
    run = ScriptedRun(get_state())
    view = LiveWebView(run.get, get_plan())
    url = await view.start()
    try:
        run.fail = True
        status, _, body = await get_http(url, get_request("/state.json"))
        assert status == 500 and b"recorder mid-update" in body
        run.fail = False
        assert (await get_http(url, get_request("/state.json")))[0] == 200
    finally:
        await view.close()


async def test_events_push_each_change_and_close_with_the_view():
    """/events sends the state at once and again when it changes; stopping the view ends the stream."""
    run = ScriptedRun(get_state(10.0))
    view = LiveWebView(run.get, get_plan(), push_every_wall_s=0.05)
    url = await view.start()
    stop = asyncio.Event()
    serving = asyncio.create_task(view.serve(stop))
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(get_request("/events"))

    async def wait_event() -> dict:
        while True:
            line = await asyncio.wait_for(reader.readline(), 5)
            if line.startswith(b"data: "):
                return json.loads(line[6:])
    assert (await wait_event())["t_s"] == 10.0
    run.state = replace(get_state(11.0), incidents=(replace(get_state().incidents[0], status="accepted"),))
    pushed = await wait_event()
    assert pushed["t_s"] == 11.0 and pushed["incidents"][0]["status"] == "accepted"
    stop.set()
    await asyncio.wait_for(serving, 10)
    assert (await asyncio.wait_for(reader.read(), 5)).strip() == b""  # the stream ended, not left hanging
    writer.close()


def test_web_address_parsing_names_what_is_wrong():
    """--web takes [HOST:]PORT, loopback by default; a bad one is refused with the reason."""
    assert parse_web_address("8765") == ("127.0.0.1", 8765)
    assert parse_web_address("0.0.0.0:8080") == ("0.0.0.0", 8080)
    with pytest.raises(RunError, match="'http' is not a number"):
        parse_web_address("localhost:http")
    with pytest.raises(RunError, match="outside 0-65535"):
        parse_web_address("70000")


async def test_a_taken_port_is_a_clear_run_error():
    """Two views on one port: the second names the address and why it could not bind."""
    first = LiveWebView(lambda: get_state())
    await first.start()
    try:
        with pytest.raises(RunError, match=f"cannot serve the live web view on 127.0.0.1:{first.port}: Address already in use"):
            await LiveWebView(lambda: get_state(), port=first.port).start()
    finally:
        await first.close()


def test_patrol_run_and_demo_take_web():
    """`patrol run --web [HOST:]PORT` and `patrol demo --web PORT`; off by default; bad ones are usage errors."""
    from patrol import build_parser

    parser = build_parser()
    assert parser.parse_args(["demo"]).web is None
    assert parser.parse_args(["demo", "--web", "8765"]).web == ("127.0.0.1", 8765)
    assert parser.parse_args(["run", "--scenario", "x", "--web", "0.0.0.0:9000"]).web == ("0.0.0.0", 9000)
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--web", "eighty"])


# ---------------------------------------------------------------------------------- who may see it
async def test_the_view_listens_on_loopback_only_by_default():
    """Officers' live positions stay on this machine unless the operator names another address:
    the default view, `--web PORT` and `patrol demo --web PORT` all bind 127.0.0.1, with no token."""
    from patrol import build_parser

    args = build_parser().parse_args(["demo", "--web", "0"])
    assert args.web == ("127.0.0.1", 0) and args.web_allow_host == []
    view = LiveWebView(lambda: get_state())
    await view.start()
    try:
        assert view._server.sockets[0].getsockname()[0] == "127.0.0.1" and len(view._server.sockets) == 1
        assert view.access.open and (await get_http(view.url, get_request("/state.json")))[0] == 200
    finally:
        await view.close()


async def test_a_page_reaching_the_view_under_another_name_is_refused():
    """DNS rebinding: a page from evil.example whose name now points at 127.0.0.1 sends
    `Host: evil.example`; it gets 421 naming the host on every path (the stream included), while
    127.0.0.1, localhost, ::1 and names allowed with --web-allow-host are served."""
    view = LiveWebView(lambda: get_state(), get_plan(), allowed_hosts=("patrol.lan",))
    await view.start()
    try:
        for path in ("/", "/state.json", "/events", "/admin"):
            status, _, body = await get_http(view.url, get_request(path, host=f"evil.example:{view.port}"))
            assert status == 421 and b"'evil.example:" in body and b"--web-allow-host evil.example" in body, path
        for host in (f"127.0.0.1:{view.port}", f"localhost:{view.port}", f"[::1]:{view.port}", "patrol.lan",
                     f"PATROL.LAN:{view.port}"):
            assert (await get_http(view.url, get_request("/state.json", host=host)))[0] == 200, host
        assert (await get_http(view.url, get_request("/state.json", host="127.0.0.1.evil.example")))[0] == 421
        status, _, body = await get_http(view.url, b"GET /state.json HTTP/1.1\r\n\r\n")
        assert status == 400 and b"no Host header" in body
        two_hosts = b"GET /state.json HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n"
        assert (await get_http(view.url, two_hosts))[0] == 400
    finally:
        await view.close()


async def test_bound_to_every_interface_it_answers_to_addresses_not_to_foreign_names():
    """On 0.0.0.0 a browser on the LAN uses the machine's address (any IP literal is served); a name
    is served only if it is this machine's or allowed."""
    import socket

    view = LiveWebView(lambda: get_state(), host="0.0.0.0")
    await view.start()
    url = f"http://127.0.0.1:{view.port}/"
    try:
        for host in ("192.168.1.20:8765", "[fe80::1]:8765", socket.gethostname()):
            assert (await get_http(url, get_request("/state.json", host=host)))[0] == 200, host
        assert (await get_http(url, get_request("/state.json", host="evil.example")))[0] == 421
    finally:
        await view.close()


async def test_with_a_token_nothing_is_shown_without_it():
    """--web-token: no token 401 (saying how to give one), a wrong one 403, on every path; the right
    one as a Bearer header, or opening /?token= once (303 to the same page without the token, which
    is kept in an HttpOnly cookie for this port) and then the cookie, the stream included."""
    view = LiveWebView(lambda: get_state(), get_plan(), access=WebAccess.view_token("s3cret-Token"))
    await view.start()
    try:
        for path in ("/", "/state.json", "/events"):
            status, headers, body = await get_http(view.url, get_request(path))
            assert status == 401 and b"needs a token" in body and headers["WWW-Authenticate"].startswith("Bearer"), path
            assert b"drone01" not in body
        wrong = [get_request("/state.json", headers={"Authorization": "Bearer s3cret-Tokem"}),
                 get_request("/state.json?token=guess"),
                 get_request("/state.json", headers={"Cookie": f"{view.cookie_name}=s3cret"})]
        for request in wrong:
            status, _, body = await get_http(view.url, request)
            assert status == 403 and body == b"wrong token\n", request
        status, _, body = await get_http(view.url, get_request("/state.json", headers={"Authorization": "Bearer s3cret-Token"}))
        assert status == 200 and json.loads(body)["live"]["t_s"] == 12.5
        status, headers, _ = await get_http(view.url, get_request("/?token=s3cret-Token"))
        assert status == 303 and headers["Location"] == "/" and headers["Referrer-Policy"] == "no-referrer"
        cookie = headers["Set-Cookie"]
        assert cookie.startswith(f"{view.cookie_name}=s3cret-Token;") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        with_cookie = {"Cookie": f"other=1; {view.cookie_name}=s3cret-Token"}
        assert (await get_http(view.url, get_request("/state.json", headers=with_cookie)))[0] == 200
        status, headers, body = await get_http(view.url, get_request("/events", "HEAD", headers=with_cookie))
        assert status == 200 and headers["Content-Type"] == "text/event-stream"
    finally:
        await view.close()


async def test_control_is_refused_unless_the_token_grants_it():
    """The view is read-only: a route that would change the run needs CONTROL, which no client
    holds without a token listing it (not even on loopback, not with a view-only token)."""
    async def stop_run(writer, head_only):
        stopped.append(True)
        await view.respond(writer, 200, "text/plain", b"stopping\n")

    stopped: list[bool] = []
    for access, token, expected in [(WebAccess(), None, 401), (WebAccess.view_token("v"), "v", 403),
                                    (WebAccess({"c": frozenset(Permission)}), "c", 200)]:
        view = LiveWebView(lambda: get_state(), access=access)
        view.add_route("/stop", stop_run, needs=Permission.CONTROL, methods=("POST",))
        await view.start()
        try:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            status, _, body = await get_http(view.url, get_request("/stop", "POST", headers=headers))
            assert status == expected, (access, body)
            if expected == 403:
                assert body == b"this token does not grant control (POST /stop)\n"
        finally:
            await view.close()
    assert stopped == [True]
    assert all(route.needs is Permission.VIEW for route in LiveWebView(lambda: get_state()).routes.values())


async def test_beyond_loopback_a_token_is_generated_and_printed(real_plan, capsys):
    """`--web 0.0.0.0:PORT` with no --web-token: the run prints a URL with a fresh token; without
    it nothing is served. A bad --web-token is refused naming why."""
    from types import SimpleNamespace

    from runloop.web import WebOptions, start_web_view

    run = SimpleNamespace(clock=lambda: 33.0, drones=real_plan.drones, plan=real_plan.plan, grids=real_plan.grids,
                          dock=real_plan.dock, scenario=SimpleNamespace(name="danyang-demo"),
                          recorder=SimpleNamespace(incidents={}, unit_positions={}), world=SimpleNamespace(incidents=[]))
    view = await start_web_view(run, WebOptions("0.0.0.0", 0))
    try:
        out = capsys.readouterr().out
        token = out.split("?token=")[1].split()[0]
        assert len(token) >= 20 and view.access.granted(token) == frozenset({Permission.VIEW})
        url = f"http://127.0.0.1:{view.port}/"
        assert (await get_http(url, get_request("/state.json")))[0] == 401
        assert (await get_http(url, get_request("/state.json", headers={"Authorization": f"Bearer {token}"})))[0] == 200
    finally:
        await view.close()
    with pytest.raises(RunError, match="web token: must be non-empty, without spaces"):
        await start_web_view(run, WebOptions("127.0.0.1", 0, token="two words"))


# ---------------------------------------------------------------------------------- in a browser
@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through the system chromedriver (nothing is downloaded)."""
    if not (Path(CHROMIUM).exists() and shutil.which(CHROMEDRIVER)):
        pytest.skip(f"no headless browser: install Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER})")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (test extras)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900",
                "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # for assert_no_script_errors
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def wait_page(driver, predicate, what: str, timeout_s: float = 10.0):
    """Block until predicate(driver) is truthy; fail naming what did not appear."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate(driver)
        except Exception as exc:  # element not there yet
            last = exc
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"the page never showed {what} (last: {last!r})")


def assert_no_script_errors(driver) -> None:
    """Nothing the page ran failed (the browser console has no errors)."""
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def get_row(driver, row_id: str) -> list[str]:
    return [td.text for td in driver.find_elements("css selector", f"#{row_id} td")]


def get_marker_centre(driver, marker_id: str) -> tuple[float, float]:
    """Screen centre of a map marker's symbol (its first child: the circle, diamond or square)."""
    return tuple(driver.execute_script(
        "const r = document.getElementById(arguments[0]).querySelector('circle,polygon,rect').getBoundingClientRect();"
        "return [r.left + r.width / 2, r.top + r.height / 2];", marker_id))


def test_page_shows_drones_incidents_and_units(browser, tmp_path):
    """Each drone with its state, mode (! for a lost link) and battery, the incident with its state and unit,
    the unit."""
    with serve_in_thread(ScriptedRun(get_state()), get_plan()) as url:
        browser.get(url)
        wait_page(browser, lambda d: get_row(d, "row-drone-drone02"), "drone02's row")
        assert get_row(browser, "row-drone-drone01") == ["drone01", "flying", "AUTO", "60", "71", "sortie01", "0/2", ""]
        assert get_row(browser, "row-drone-drone02")[:5] == ["drone02", "landing", "RTL!", "60", "18"]
        assert get_row(browser, "row-incident-inc-fire-0001") == ["inc-fire-0001", "fire", "alerted", "M02"]
        assert get_row(browser, "row-unit-M02")[:2] == ["M02", "busy"]
        assert "crowd-2" in browser.find_element("id", "waiting").text
        labels = browser.find_element("id", "map").text
        assert "drone01 AUTO 71%" in labels and "drone02 RTL! landing 18%" in labels
        assert "inc-fire-0001 alerted \u2192 M02" in labels and "M02 busy" in labels
        assert len(browser.find_elements("css selector", "#cells polygon")) == 2
        assert len(browser.find_elements("css selector", "#routes polyline")) == 1
        browser.save_screenshot(str(tmp_path / "web_view.png"))
        assert (tmp_path / "web_view.png").stat().st_size > 10_000
        assert_no_script_errors(browser)


def test_markers_sit_where_they_are_on_the_ground(browser):
    """Positions on screen are the ground positions at one scale, north up: each marker where
    drone01 and the scale from drone01 to drone02 predict it."""
    state = get_state()
    with serve_in_thread(ScriptedRun(state), get_plan()) as url:
        browser.get(url)
        wait_page(browser, lambda d: d.find_elements("id", "unit-M02"), "the unit marker")
        frame = LocalFrame(*DOCK)
        where = {"drone-drone01": (state.drones[0].lat, state.drones[0].lon),
                 "drone-drone02": (state.drones[1].lat, state.drones[1].lon),
                 "incident-inc-fire-0001": (state.incidents[0].lat, state.incidents[0].lon),
                 "unit-M02": (state.units[0].lat, state.units[0].lon), "dock-DOCK-NE": DOCK}
        ground = {k: frame.to_en(*v) for k, v in where.items()}
        screen = {k: get_marker_centre(browser, k) for k in where}
        (e1, n1), (e2, n2) = ground["drone-drone01"], ground["drone-drone02"]
        (x1, y1), (x2, y2) = screen["drone-drone01"], screen["drone-drone02"]
        px_per_m = ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5 / ((e2 - e1) ** 2 + (n2 - n1) ** 2) ** 0.5
        assert px_per_m > 0.2, "the map is too small to tell markers apart"
        for key in ("incident-inc-fire-0001", "unit-M02", "dock-DOCK-NE"):
            e, n = ground[key]
            expected = (x1 + (e - e1) * px_per_m, y1 - (n - n1) * px_per_m)
            x, y = screen[key]
            assert abs(x - expected[0]) < 4 and abs(y - expected[1]) < 4, f"{key} at {(x, y)}, expected {expected}"


def test_page_follows_the_run_as_it_changes(browser, tmp_path):
    """Over the pushed stream: a drone moves and goes GUIDED on overwatch, the incident is accepted,
    a new incident and a new unit appear; a finished case is listed below the open ones."""
    run = ScriptedRun(get_state(10.0))
    with serve_in_thread(run, get_plan()) as url:
        browser.get(url)
        wait_page(browser, lambda d: d.find_element("id", "conn").text == "live", "the live stream connected")
        before = get_marker_centre(browser, "drone-drone01")
        s = run.state
        moved = replace(s.drones[0], mode="GUIDED", watching=("inc-fire-0001",), battery_pct=64.0,
                        lat=at(180, 480)[0], lon=at(180, 480)[1])
        run.state = replace(s, t_s=42.0, drones=(moved, s.drones[1]),
                            incidents=(IncidentLive("inc-crowd-0000", "crowd", "resolved", "M03", *at(0, 300)),
                                       replace(s.incidents[0], status="accepted"),
                                       IncidentLive("inc-crowd-0002", "crowd", "detected", "", *at(380, 100))),
                            units=s.units + (UnitLive("M03", "available", *at(-50, 300)),))
        wait_page(browser, lambda d: d.find_element("id", "t").text == "42.0", "t = 42.0 s")
        assert get_row(browser, "row-drone-drone01")[:5] == ["drone01", "flying", "GUIDED", "60", "64"]
        assert get_row(browser, "row-drone-drone01")[7] == "inc-fire-0001"
        assert get_row(browser, "row-incident-inc-fire-0001")[2:] == ["accepted", "M02"]
        assert get_row(browser, "row-incident-inc-crowd-0002")[2] == "detected"
        order = [r.get_attribute("id") for r in browser.find_elements("css selector", "#incident-table tbody tr")]
        assert order == ["row-incident-inc-fire-0001", "row-incident-inc-crowd-0002", "row-incident-inc-crowd-0000"], \
            "open cases above the finished one"
        assert browser.find_elements("id", "unit-M03")
        after = get_marker_centre(browser, "drone-drone01")
        assert after[0] > before[0] + 20 and after[1] < before[1] - 5, "drone01 flew north-east on the map"
        trail = browser.find_element("id", "trail-drone-drone01").get_attribute("points").split()
        assert len(trail) == 2, "the track from where drone01 was to where it is"
        browser.save_screenshot(str(tmp_path / "web_view_later.png"))
        assert_no_script_errors(browser)


def test_a_sortie_planned_again_mid_run_is_drawn_and_shown_as_the_one_being_flown(browser):
    """drone01's sortie was aborted and its unseen cell planned again: the re-planned sortie, not in
    the plan layer, appears on the map once the run has it, drawn as the sortie being flown."""
    run = ScriptedRun(get_state(10.0))
    with serve_in_thread(run, get_plan()) as url:
        browser.get(url)
        wait_page(browser, lambda d: d.find_element("id", "conn").text == "live", "the live stream connected")
        assert not browser.find_elements("css selector", "#replans polyline")
        replan = RouteLine("drone01", "sortie01-replan1", (DOCK, at(250, 450), at(250, 750), DOCK))
        s = run.state
        run.state = replace(s, t_s=50.0, drones=(replace(s.drones[0], sortie="sortie01-replan1"), s.drones[1]),
                            replans=(replan,))
        wait_page(browser, lambda d: d.find_elements("id", "route-drone01-sortie01-replan1"), "the re-planned route")
        line = browser.find_element("id", "route-drone01-sortie01-replan1")
        assert len(line.get_attribute("points").split()) == 4
        assert line.get_attribute("stroke-dasharray") == "6 4", "drawn as the sortie being flown"
        planned = browser.find_element("css selector", '#routes polyline[data-sortie="sortie01"]')
        assert planned.get_attribute("stroke-dasharray") in ("", None), "the planned sortie is no longer the current one"
        assert_no_script_errors(browser)


def test_page_logs_in_once_with_the_token_and_follows_the_run(browser):
    """With --web-token, opening /?token=TOKEN once logs the browser in: the address bar loses the
    token and the page, its polling and its stream work from the cookie."""
    run = ScriptedRun(get_state(10.0))
    with serve_in_thread(run, get_plan(), WebAccess.view_token("field-ops-7")) as url:
        browser.get(url + "state.json")
        assert "needs a token" in browser.page_source
        browser.get(url + "?token=field-ops-7")
        wait_page(browser, lambda d: get_row(d, "row-drone-drone01"), "drone01's row")
        assert "token" not in browser.current_url
        run.state = replace(run.state, t_s=42.0)
        wait_page(browser, lambda d: d.find_element("id", "t").text == "42.0", "t = 42.0 s pushed")
        # The only errors: that first refusal and the favicon the browser asked for with it (when
        # it asks is the browser's business, so it may come late)
        errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        refusals = [e for e in errors if "/state.json - " in e and "401" in e]
        assert len(refusals) <= 1 and all(e in refusals or "/favicon.ico - " in e for e in errors), errors
        browser.delete_all_cookies()


def test_page_polls_when_server_sent_events_are_unavailable(browser):
    """A browser without EventSource still follows the run by polling /state.json."""
    run = ScriptedRun(get_state(10.0))
    added = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": "delete window.EventSource;"})
    try:
        with serve_in_thread(run, get_plan()) as url:
            browser.get(url)
            wait_page(browser, lambda d: d.find_element("id", "conn").text == "live (polling)", "polling")
            run.state = replace(run.state, t_s=99.0)
            wait_page(browser, lambda d: d.find_element("id", "t").text == "99.0", "t = 99.0 s after a poll")
    finally:
        browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": added["identifier"]})


@pytest.fixture(scope="module")
def real_plan():
    """Two Danyang cells planned for two drones from the first dock, with run-like drone records."""
    from types import SimpleNamespace

    from common.values import Pose
    from mission_planner import PlannerConfig, load_grids, plan_patrol
    from mission_planner.samples import DANYANG_GRIDS

    grids = load_grids(DANYANG_GRIDS)
    dock = grids.docks[0]
    plan = plan_patrol(grids, PlannerConfig().with_overrides(fleet={"drones": 2}), cells=["DY-C0713", "DY-C0534"],
                       start_positions={"drone01": dock.grid_id, "drone02": dock.grid_id})

    def record(d):
        state = SimpleNamespace(pose=Pose(0, dock.lat, dock.lon, 0.0, 10.0), battery_remaining_pct=100.0,
                                mode="STABILIZE", link_ok=True, armed=False)
        return SimpleNamespace(drone_id=d.drone_id, sorties=list(d.sorties), vehicle=SimpleNamespace(state=state),
                               current="", done=0, total=len(d.sorties), overwatch_incident=None, watching={})
    drones = SimpleNamespace(drones={d.drone_id: record(d) for d in plan.drones})
    return SimpleNamespace(grids=grids, dock=dock, plan=plan, drones=drones)


def test_plan_layer_draws_the_planned_cells_and_each_sortie_route(real_plan):
    """From a real plan: every planned cell as a closed ring, each sortie a line dock -> its
    mission's waypoints -> dock, over the cells it sweeps."""
    from shapely.geometry import Point

    from runloop.web import plan_layer

    grids, dock, plan = real_plan.grids, real_plan.dock, real_plan.plan
    layer = plan_layer(plan, grids, dock, real_plan.drones)
    assert sorted(layer.cells) == ["DY-C0534", "DY-C0713"]
    assert all(ring[0] == ring[-1] and len(ring) >= 4 for rings in layer.cells.values() for ring in rings)
    assert len(layer.routes) == len(plan.sorties) and layer.docks[0].dock_id == dock.grid_id
    for route, sortie in zip(layer.routes, plan.sorties):
        assert (route.drone_id, route.sortie_id) == (sortie.drone_id, sortie.sortie_id)
        assert route.points[0] == route.points[-1] == (round(dock.lat, 7), round(dock.lon, 7))
        assert len(route.points) == sortie.waypoint_count + 2
        xy = [grids.projector.lonlat_to_m(lon, lat) for lat, lon in route.points[1:-1]]
        for g in sortie.grid_ids:  # the line passes over every cell it sweeps (transit legs may go round)
            near = min(grids.cell(g).polygon_m.distance(Point(float(x), float(y))) for x, y in xy)
            assert near < 1.0, f"{route.sortie_id} never reaches {g} (closest waypoint {near:.0f} m away)"


def test_zoom_pan_and_centre_on_a_row(browser):
    """Wheel zoom on the fire doubles distances around it and leaves it in place; double-click
    brings everything back into view; a click on a table row centres the map on that unit."""
    from selenium.webdriver.common.action_chains import ActionChains

    with serve_in_thread(ScriptedRun(get_state()), get_plan()) as url:
        browser.get(url)
        wait_page(browser, lambda d: d.find_elements("id", "drone-drone01"), "drone01 on the map")
        fire, drone = get_marker_centre(browser, "incident-inc-fire-0001"), get_marker_centre(browser, "drone-drone01")
        for _ in range(3):  # 1.25 ** 3: about twice the scale
            browser.execute_script("arguments[0].dispatchEvent(new WheelEvent('wheel', {deltaY: -100, clientX: arguments[1],"
                                   " clientY: arguments[2], bubbles: true, cancelable: true}));",
                                   browser.find_element("id", "map"), *fire)
        fire2, drone2 = get_marker_centre(browser, "incident-inc-fire-0001"), get_marker_centre(browser, "drone-drone01")
        assert abs(fire2[0] - fire[0]) < 2 and abs(fire2[1] - fire[1]) < 2
        assert abs((drone2[0] - fire2[0]) / (drone[0] - fire[0]) - 1.25 ** 3) < 0.05
        ActionChains(browser).double_click(browser.find_element("id", "map")).perform()
        wait_page(browser, lambda d: abs(get_marker_centre(d, "drone-drone01")[0] - drone[0]) < 2, "the fitted view again")
        ActionChains(browser).move_to_element(browser.find_element("id", "map")).click_and_hold() \
            .move_by_offset(60, 40).release().perform()
        moved = get_marker_centre(browser, "drone-drone01")
        assert abs(moved[0] - drone[0] - 60) < 3 and abs(moved[1] - drone[1] - 40) < 3, "the map follows a drag"
        browser.find_element("id", "row-unit-M02").click()  # centres the map on the unit
        centre = browser.execute_script("const r = document.getElementById('map').getBoundingClientRect();"
                                        "return [r.left + r.width / 2, r.top + r.height / 2];")
        unit = get_marker_centre(browser, "unit-M02")
        assert abs(unit[0] - centre[0]) < 2 and abs(unit[1] - centre[1]) < 2


def test_live_state_is_what_the_table_reads_with_positions():
    """live_state() takes the run's drones, recorder and world (as the table does) and keeps the
    positions the map needs; a unit without a position yet stays off the snapshot."""
    from types import SimpleNamespace

    from common.values import Pose
    from runloop.live import format_table, live_state

    vehicle = SimpleNamespace(state=SimpleNamespace(pose=Pose(0, 32.001, 119.581, 55.0, 65.0, heading_deg=270.0),
                                                    battery_remaining_pct=48.0, mode="GUIDED", link_ok=True, armed=True))
    from common.values import Mission, MissionItem
    dock = (32.0, 119.58)
    again = SimpleNamespace(sortie_id="sortie01-replan1", mission=Mission((
        MissionItem(16, *dock, 0.0), MissionItem(22, alt_m=60.0), MissionItem(16, 32.004, 119.585, 60.0),
        MissionItem(16, 32.004, 119.59, 60.0), MissionItem(20))))
    drones = SimpleNamespace(drones={"drone01": SimpleNamespace(
        drone_id="drone01", vehicle=vehicle, current="sortie02", done=1, total=3, overwatch_incident="inc-a",
        watching={"inc-a": (32.0, 119.5), "inc-b": (32.0, 119.5)}, replanned=[again])})
    recorder = SimpleNamespace(
        incidents={"inc-a": {"incident": {"kind": "crowd", "lat": 32.002, "lon": 119.583}, "status": "en_route",
                             "unit_id": "M01"}},
        unit_positions={"M01": (32.003, 119.584, "busy"), "M09": (None, None, "available")})
    world = SimpleNamespace(incidents=[SimpleNamespace(name="crowd-1", started_s=40.0, lat_lon=(32.002, 119.583),
                                                       spec=SimpleNamespace(kind="crowd"))])
    state = live_state(61.0, drones, recorder, world)
    d = state.drones[0]
    assert (d.lat, d.lon, d.alt_rel_m, d.heading_deg, d.battery_pct) == (32.001, 119.581, 55.0, 270.0, 48.0)
    assert d.watching == ("inc-a", "inc-b") and (d.sortie, d.done, d.total) == ("sortie02", 1, 3)
    assert state.incidents == (IncidentLive("inc-a", "crowd", "en_route", "M01", 32.002, 119.583),)
    assert [u.unit_id for u in state.units] == ["M01"]
    assert state.scripted == (ScriptedLive("crowd-1", "crowd", 32.002, 119.583, 40.0),) and state.waiting == []
    assert "inc-a, inc-b" in format_table(state) and json.dumps(state.to_jsonable())
    assert [(r.sortie_id, r.points) for r in state.replans] == [
        ("sortie01-replan1", (dock, (32.004, 119.585), (32.004, 119.59), dock))], "dock, its waypoints, dock"


async def test_the_web_stage_serves_a_patrol_runs_own_objects(real_plan, capsys):
    """start_web_view(run, WebOptions(host, port)) reads the run's clock, drones, recorder, world and
    plan, and prints the URL to open."""
    from types import SimpleNamespace

    from runloop.web import WebOptions, start_web_view

    run = SimpleNamespace(clock=lambda: 33.0, drones=real_plan.drones, plan=real_plan.plan, grids=real_plan.grids,
                          dock=real_plan.dock, scenario=SimpleNamespace(name="danyang-demo"),
                          recorder=SimpleNamespace(incidents={}, unit_positions={"M01": (32.0, 119.57, "available")}),
                          world=SimpleNamespace(incidents=[]))
    view = await start_web_view(run, WebOptions("127.0.0.1", 0))
    try:
        assert f"live web view: {view.url}\n" in capsys.readouterr().out
        status, _, body = await get_http(view.url, get_request("/state.json"))
        data = json.loads(body)
        assert status == 200 and data["live"]["t_s"] == 33.0
        assert [d["drone_id"] for d in data["live"]["drones"]] == ["drone01", "drone02"]
        assert sorted(data["plan"]["cells"]) == ["DY-C0534", "DY-C0713"] and data["live"]["units"][0]["unit_id"] == "M01"
        assert b"patrol danyang-demo" in (await get_http(view.url, get_request("/")))[2]
    finally:
        await view.close()
