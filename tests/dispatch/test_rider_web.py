"""The rider web app (dispatch/riderapp.py, dispatch/static/rider/) in a real headless Chromium
at a phone's viewport, against a real Mosquitto over WebSockets: an officer signs in, gets an
alert, accepts it, loses the broker, answers `arrived` while it is down, and the answer reaches
the controller after the reconnect; an alert delivered twice is shown once."""
from __future__ import annotations

import json

import pytest

from dispatch.errors import DispatchError
from dispatch.riderapp import RiderPageConfig
from tests.dispatch.riderweb import (
    PHONE,
    ControllerSide,
    alert_payload,
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

    from tests.scenario.test_web_view import get_http, get_request

    async def fetch(url):
        return await get_http(url, get_request("/rider/config.json"))

    with serving_rider_page(RiderPageConfig(ws_url="wss://broker.example:9001")) as url:
        status, headers, body = asyncio.run(fetch(url))
    assert status == 200 and json.loads(body) == {"ws_url": "wss://broker.example:9001", "ws_port": 9001,
                                                  "topic_prefix": "patrol"}
    with pytest.raises(DispatchError, match="no login in it"):
        RiderPageConfig(ws_url="ws://M01:pw@broker:9001")
    with pytest.raises(DispatchError, match="want ws://"):
        RiderPageConfig(ws_url="mqtt://broker:1883")
