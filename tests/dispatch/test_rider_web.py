"""The rider web app (dispatch/riderapp.py, dispatch/static/rider/) in a real headless Chromium
at a phone's viewport, against a real Mosquitto over WebSockets: an officer signs in, gets an
alert, accepts it, loses the broker, answers `arrived` while it is down, and the answer reaches
the controller after the reconnect; an alert delivered twice is shown once."""
from __future__ import annotations

import json
from pathlib import Path
import time

import pytest

from dispatch.errors import DispatchError
from dispatch.riderapp import RiderPageConfig
from tests.dispatch.riderweb import (
    PHONE,
    ControllerSide,
    alert_payload,
    get_http,
    have_browser,
    phone_browser,
    serving_rider_page,
    shown_alert,
    sign_in,
    wait_online,
    wait_page,
)

pytestmark = pytest.mark.mosquitto


@pytest.fixture
def phone():
    if not have_browser():
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver")
    pytest.importorskip("selenium.webdriver", reason="selenium is not installed (test extras)")
    with phone_browser() as driver:
        yield driver


def outbox_count(driver) -> int:
    return int(driver.execute_script("return document.getElementById('outbox').dataset.count"))


def assert_fits_the_phone(driver) -> None:
    width = driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= PHONE[0], f"the page is {width} px wide on a {PHONE[0]} px phone (sideways scrolling)"


def test_rider_page_alert_accept_broker_restart_and_no_duplicates(mosquitto_broker, phone):
    """Sign in -> alert shown with its figures and map -> accept reaches the controller -> the same
    alert again is not shown again -> broker down -> `arrived` kept in the outbox -> broker back ->
    `arrived` delivered; after a reload the alert is still there, answered, and still shown once."""
    controller = ControllerSide(mosquitto_broker.host, mosquitto_broker.port)
    try:
        with serving_rider_page(RiderPageConfig(ws_url=mosquitto_broker.ws_url)) as url:
            sign_in(phone, url, "M01", "secret")
            wait_online(phone)
            controller.send_alert("M01", alert_payload("alert-0001"))
            wait_page(phone, "return document.getElementById('alert').dataset.alertId === 'alert-0001'",
                      "the alert")
            card = phone.find_element("id", "alert").text
            assert "FIRE" in card and "1.0 km" in card and "NE 53°" in card and "1.5 min" in card
            assert phone.find_elements("css selector", "#map #map-unit") and \
                phone.find_elements("css selector", "#map #map-incident")
            assert_fits_the_phone(phone)

            phone.find_element("id", "accept").click()
            ack = controller.wait_ack("alert-0001", "accept")
            assert ack["schema"] == "patrol.ack/1" and isinstance(ack["ts"], float)

            controller.send_alert("M01", alert_payload("alert-0001"))  # a redelivery
            wait_page(phone, "return window.rider.duplicates === 1", "the duplicate counted")
            assert phone.execute_script("return window.rider.shown") == ["alert-0001"]

            mosquitto_broker.stop()
            wait_page(phone, "return document.getElementById('conn').dataset.state === 'offline'", "'offline'")
            phone.find_element("id", "arrived").click()
            assert outbox_count(phone) == 1
            assert "1 answer waiting to send" in phone.find_element("id", "outbox").text
            mosquitto_broker.start()
            wait_online(phone, timeout_s=15)
            controller.wait_ack("alert-0001", "arrived", timeout_s=15)
            wait_page(phone, "return document.getElementById('outbox').dataset.count === '0'", "the outbox emptied")

            phone.refresh()  # the tab reloaded (or the phone restarted the browser): nothing shown twice
            wait_online(phone)
            assert shown_alert(phone) == "alert-0001"
            assert phone.find_element("id", "state").get_attribute("data-state") == "arrived"
            controller.send_alert("M01", alert_payload("alert-0001"))
            controller.send_alert("M01", alert_payload("alert-0002", kind="crowd"))
            wait_page(phone, "return document.getElementById('alert').dataset.alertId === 'alert-0002'",
                      "the second alert")
            assert phone.execute_script("return window.rider.shown") == ["alert-0002"]
            assert phone.execute_script("return window.rider.duplicates") == 1
            assert [a["action"] for a in controller.acks] == ["accept", "arrived"]  # each answer once
            errors = [e["message"] for e in phone.get_log("browser") if e["level"] == "SEVERE"
                      and "WebSocket" not in e["message"]]  # the broker being down is expected
            assert errors == [], errors
    finally:
        controller.close()


def test_the_controller_serves_where_the_broker_is_never_a_password(mosquitto_broker):
    """/rider/config.json says where the WebSockets listener is and the topic prefix, nothing else;
    a rider broker address with a login in it or a wrong scheme is refused naming what is wrong."""
    import asyncio

    with serving_rider_page(RiderPageConfig(ws_url="wss://broker.example:9001")) as url:
        status, body = asyncio.run(get_http(url, "/rider/config.json"))
    assert status == 200 and json.loads(body) == {"ws_url": "wss://broker.example:9001", "ws_port": 9001,
                                                  "topic_prefix": "patrol"}
    with pytest.raises(DispatchError, match="no login in it"):
        RiderPageConfig(ws_url="ws://M01:pw@broker:9001")
    with pytest.raises(DispatchError, match="want ws://"):
        RiderPageConfig(ws_url="mqtt://broker:1883")


def test_a_unit_on_a_secured_broker_sees_only_its_own_alerts_and_shares_its_position(mosquitto_factory, phone):
    """On a `patrol broker-config` broker (WebSockets on the loopback interface): a wrong password
    is refused on the page; M01 signed in gets its alert and not M02's; with the officer's consent
    the phone's position goes out as OwnTracks `location`, `busy` once the alert is accepted."""
    from dispatch.broker_config import CONTROLLER_USER, BrokerLayout, write_broker_config
    from tests.fixtures.broker import root_user_lines
    from tests.fixtures.ports import free_port

    made = {}

    def config(port, workdir):
        layout = BrokerLayout(units=["M01", "M02"], port=port, tls_port=0, ws_port=free_port(),
                              run_as_root=bool(root_user_lines()))
        made.update(layout=layout, files=write_broker_config(layout, workdir / "broker"))
        return made["files"].config_path.read_text()

    broker = mosquitto_factory(config)
    layout, credentials = made["layout"], made["files"].credentials
    controller = ControllerSide(broker.host, broker.port, CONTROLLER_USER, credentials[CONTROLLER_USER])
    locations: list[dict] = []
    controller.client.message_callback_add("patrol/units/+/location",
                                           lambda c, u, m: locations.append(json.loads(m.payload)))
    controller.client.subscribe("patrol/units/+/location", qos=0)
    try:
        with serving_rider_page(RiderPageConfig(ws_port=layout.ws_port)) as url:  # ws://127.0.0.1:PORT from the page's host
            sign_in(phone, url, "M01", "not-the-password")
            wait_page(phone, "return document.getElementById('conn').dataset.state === 'refused'", "'login refused'")
            assert "refused unit M01" in phone.find_element("id", "login-error").text

            phone.find_element("id", "password").clear()
            phone.find_element("id", "password").send_keys(credentials["M01"])
            phone.find_element("css selector", "#login button[type=submit]").click()
            wait_online(phone)
            controller.send_alert("M02", alert_payload("for-m02", unit="M02"))
            controller.send_alert("M01", alert_payload("for-m01"))
            wait_page(phone, "return document.getElementById('alert').dataset.alertId === 'for-m01'", "M01's alert")
            assert phone.execute_script("return window.rider.shown") == ["for-m01"]

            phone.execute_cdp_cmd("Browser.grantPermissions", {"origin": url.rstrip("/"),
                                                               "permissions": ["geolocation"]})
            phone.execute_cdp_cmd("Emulation.setGeolocationOverride",
                                  {"latitude": 32.001, "longitude": 119.581, "accuracy": 6})
            phone.find_element("id", "share").click()
            wait_page(phone, "return document.getElementById('share').dataset.sharing === 'on'", "sharing on")
            phone.find_element("id", "accept").click()
            controller.wait_ack("for-m01", "accept")
            deadline = time.monotonic() + 10
            while not any(loc.get("status") == "busy" for loc in locations) and time.monotonic() < deadline:
                time.sleep(0.05)
            busy = [loc for loc in locations if loc.get("status") == "busy"]
            assert busy, f"no busy location reached the controller (got {locations})"
            assert busy[0]["_type"] == "location" and busy[0]["lat"] == 32.001 and busy[0]["lon"] == 119.581
            assert busy[0]["acc"] == 6 and isinstance(busy[0]["tst"], int)
    finally:
        controller.close()


def test_patrol_dispatch_web_serves_the_rider_app(mosquitto_broker, tmp_path):
    """`patrol dispatch --web 127.0.0.1:0` prints the rider page's address and serves it (the page,
    the vendored MQTT client, where the broker is) next to the running dispatcher; SIGTERM ends both."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "patrol.py", "dispatch", "--broker", mosquitto_broker.url,
                             "--journal", str(tmp_path / "journal.sqlite"), "--web", "127.0.0.1:0",
                             "--rider-broker", mosquitto_broker.ws_url],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={k: v for k, v in os.environ.items() if k != "PATROL_WEB_TOKEN"})
    try:
        page_url = None
        deadline = time.monotonic() + 20
        while page_url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("rider web app: "):
                page_url = line.split()[3]
            elif not line and proc.poll() is not None:
                break
        assert page_url and page_url.startswith("http://127.0.0.1:") and page_url.endswith("/rider/"), page_url
        with urllib.request.urlopen(page_url, timeout=5) as page:
            assert b"Go on duty" in page.read()
        with urllib.request.urlopen(page_url + "mqtt.min.js", timeout=5) as client:
            assert client.headers["Content-Type"].startswith("text/javascript") and len(client.read()) > 100_000
        with urllib.request.urlopen(page_url + "config.json", timeout=5) as config:
            assert json.loads(config.read())["ws_url"] == mosquitto_broker.ws_url
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


async def test_patrol_run_web_serves_the_rider_app_next_to_the_live_view(capsys):
    """`patrol run --web … --rider-broker URL`: the live view's server also serves /rider/, with the
    same guard (here: the view token) and the broker address given."""
    from types import SimpleNamespace

    from runloop.web import WebOptions, start_web_view
    run = SimpleNamespace(plan=SimpleNamespace(cells=()), grids=None, drones=SimpleNamespace(drones={}),
                          dock=SimpleNamespace(grid_id="DOCK", lat=32.0, lon=119.58),
                          scenario=SimpleNamespace(name="test"))
    view = await start_web_view(run, WebOptions("127.0.0.1", 0, token="tok",
                                                rider_page=RiderPageConfig(ws_url="wss://patrol-host.lan:9001")))
    try:
        assert (await get_http(view.url, "/rider/"))[0] == 401
        status, body = await get_http(view.url, "/rider/", {"Authorization": "Bearer tok"})
        assert status == 200 and b"Go on duty" in body
        _, body = await get_http(view.url, "/rider/config.json", {"Authorization": "Bearer tok"})
        assert json.loads(body)["ws_url"] == "wss://patrol-host.lan:9001"
    finally:
        await view.close()


async def test_patrol_dispatch_web_beyond_loopback_generates_a_token(capsys):
    """Bound beyond this machine without --web-token, the rider app gets a generated token, printed
    once in the page's address; without it nothing is served."""
    from dispatch.riderapp import RiderWebOptions, serve_rider_app

    server = await serve_rider_app(RiderWebOptions("0.0.0.0", 0), RiderPageConfig())
    try:
        printed = capsys.readouterr().out
        assert printed.startswith(f"rider web app: http://0.0.0.0:{server.port}/rider/?token=")
        token = printed.split("?token=")[1].split()[0]
        url = f"http://127.0.0.1:{server.port}/"
        assert (await get_http(url, "/rider/"))[0] == 401
        assert (await get_http(url, "/rider/", {"Authorization": f"Bearer {token}"}))[0] == 200
    finally:
        await server.close()
