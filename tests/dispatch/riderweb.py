"""The rider web app as an officer uses it, for tests and bench/rider_web_bench.py: the page served
by the controller's web server (in a thread), a real headless Chromium at a phone's viewport,
and the controller's side of the wire (alerts out, acks in) on a real Mosquitto."""
from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as paho

from common.geo import offset
from common.httpd import WebServer
from common.values import IncidentKind
from dispatch.riderapp import RiderPageConfig, add_rider_routes
from dispatch.schemas import AlertMessage, IncidentPayload, dump

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PHONE = (360, 740)  # CSS pixels: a small Android phone
ORIGIN = (32.0, 119.58)
P = "patrol"


def have_browser() -> bool:
    return Path(CHROMIUM).exists() and shutil.which(CHROMEDRIVER) is not None


@contextmanager
def serving_rider_page(page: RiderPageConfig):
    """The controller's web server with the rider app, on its own loop in a thread; yields its URL."""
    box: dict = {}
    ready = threading.Event()

    async def main():
        server = WebServer(name="rider web app")
        add_rider_routes(server, page)
        box["url"] = await server.start()
        box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        await server.serve(box["stop"])

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True, name="rider-web")
    thread.start()
    assert ready.wait(10), "the rider web server did not start"
    try:
        yield box["url"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)


@contextmanager
def phone_browser():
    """Headless Chromium (the system's; nothing downloaded) at a phone's viewport."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": PHONE[0], "height": PHONE[1],
                                                                           "pixelRatio": 2.0, "touch": True}})
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def wait_page(driver, script: str, what: str, timeout_s: float = 10.0):
    """Block until the page's `return …` script is truthy; fail naming what did not appear."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = driver.execute_script(script)
        except Exception as exc:  # the page is still loading
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.05)
    raise AssertionError(f"the rider page never showed {what} (last: {last!r})")


def sign_in(driver, url: str, unit: str, password: str) -> None:
    """Open the page and go on duty as `unit`, as the officer does with the form."""
    driver.get(url + "rider/")
    wait_page(driver, "return window.rider && window.rider.config", "its configuration")
    driver.find_element("id", "unit").send_keys(unit)
    driver.find_element("id", "password").send_keys(password)
    driver.find_element("css selector", "#login button[type=submit]").click()


def wait_online(driver, timeout_s: float = 10.0) -> None:
    wait_page(driver, "return document.getElementById('conn').dataset.state === 'online'", "'online'", timeout_s)


def shown_alert(driver) -> str:
    return driver.execute_script("return document.getElementById('alert').hidden ? '' : "
                                 "document.getElementById('alert').dataset.alertId")


def alert_payload(alert_id: str, unit: str = "M01", kind: IncidentKind = IncidentKind.FIRE,
                  north_m: float = 600.0, east_m: float = 800.0) -> bytes:
    """A patrol.alert/1 as the controller sends it: an incident 1 km NE of the unit at ORIGIN."""
    lat, lon = offset(*ORIGIN, north_m, east_m)
    now = time.time()
    incident = IncidentPayload(id=f"inc-{alert_id}", kind=kind, confidence=0.9, lat=lat, lon=lon, error_m=8.0,
                               first_seen=now, drone_id="D1")
    return dump(AlertMessage(alert_id=alert_id, unit_id=unit, incident=incident, distance_m=1000.0, eta_s=90.0,
                             bearing_deg=53.1, priority=2, issued_at=now, expires_at=now + 60))


class ControllerSide:
    """The controller's end of the wire (paho, its own thread): publishes alerts, collects acks."""

    def __init__(self, host: str, port: int, username: str | None = None, password: str | None = None):
        self.acks: list[dict] = []
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-controller",
                                  protocol=paho.MQTTv5)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_message = lambda c, u, m: self.acks.append(json.loads(m.payload))
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{P}/units/+/acks", qos=1)
        self.client.connect(host, port, keepalive=15)
        self.client.loop_start()

    def send_alert(self, unit: str, payload: bytes) -> None:
        info = self.client.publish(f"{P}/units/{unit}/alerts", payload, qos=1)
        info.wait_for_publish(5)

    def wait_ack(self, alert_id: str, action: str, timeout_s: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for ack in self.acks:
                if ack["alert_id"] == alert_id and ack["action"] == action:
                    return ack
            time.sleep(0.05)
        raise AssertionError(f"no {action} ack for {alert_id} reached the controller (got {self.acks})")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def get_http(url: str, path: str, headers: dict | None = None, timeout_s: float = 5.0) -> tuple[int, bytes]:
    """GET `path` from the server at `url` as a browser would (Host 127.0.0.1): (status, body)."""
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout_s)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body
