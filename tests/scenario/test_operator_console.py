"""The operator console of the live web view, flown end to end: a patrol run on a real Mosquitto
with the web view, driven in a real headless Chromium by an operator holding the control token.
An alarm nobody will confirm comes in; the operator closes it as a false alarm (the unit gets a
stand-down on its alerts topic, the report counts it), sends the drone to a point on the map (it
flies there), recalls it and ends the shift. Without the control token the page shows no buttons
and every action route refuses."""
from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from common.geo import distance_m
from runloop.eventstore import EventStore
from runloop.scenario import parse_scenario
from runloop.web import WebOptions
from tests.fixtures.ports import free_port

from .test_web_view import assert_no_script_errors, browser, get_http, get_request, wait_page  # noqa: F401

CALL_AT = (32.0075, 119.5975)  # off DY-C0713's lanes, inside the sortie's fence
POINT = (32.0115, 119.5930)  # where the operator sends the drone: over the cell, off its first lanes
VIEW, CONTROL = "view-token-for-the-wall-screen", "control-token-for-the-operator"


def console_scenario() -> dict:
    """One drone sweeping DY-C0713; one unit far away and slow (it accepts but never gets there)."""
    return {
        "name": "operator-console", "seed": 3, "cells": ["DY-C0713"], "duration_s": 1500, "speedup": 15.0,
        "fleet": {"drones": 1, "airframe": {"pack_mah": 8320}, "dock": "DOCK-NE", "on_stop": "hold"},
        "riders": {"count": 1, "radius_m": 2400, "speed_m_s": 1, "accept_delay_s": 1, "on_scene_s": 10},
        "overwatch": {"standoff_m": 10},
        "alarms": [{"at_s": 15, "lat": CALL_AT[0], "lon": CALL_AT[1], "kind": "citizen-report",
                    "text": "a caller thinks she saw smoke"}]}


class RunInThread:
    """run_patrol on its own event loop, so the blocking browser driver can act meanwhile."""

    def __init__(self, broker_url: str, out, port: int):
        from patrol import run_patrol

        self.url = f"http://127.0.0.1:{port}"
        self.report: dict | None = None
        self.error: BaseException | None = None
        web = WebOptions("127.0.0.1", port, token=VIEW, control_token=CONTROL)

        def main():
            try:
                self.report = asyncio.run(run_patrol(parse_scenario(console_scenario()), out, broker_url=broker_url,
                                                     live=False, web=web))
            except BaseException as exc:  # handed to the test
                self.error = exc
        self.thread = threading.Thread(target=main, daemon=True, name="patrol-run")
        self.thread.start()

    def get_state(self, token: str = VIEW) -> dict:
        status, _, body = asyncio.run(get_http(self.url, get_request("/state.json",
                                                                      headers={"Authorization": f"Bearer {token}"})))
        assert status == 200, body
        return json.loads(body)["live"]

    def post_command(self, command: dict, token: str | None) -> tuple[int, bytes]:
        body = json.dumps(command).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        assert self.thread.is_alive(), f"the run ended: {self.error!r} {self.report and self.report['failures']}"
        status, _, answer = asyncio.run(get_http(self.url, get_request("/control/command", "POST", headers=headers)
                                                 + body))
        return status, answer

    def wait_finished(self, timeout_s: float) -> dict:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the run did not end after end shift"
        if self.error:
            raise self.error
        return self.report


def wait_run(run: RunInThread, predicate, what: str, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        assert run.thread.is_alive() or run.report is None, "the run ended"
        try:
            value = predicate(run.get_state())
        except (ConnectionError, OSError, AssertionError) as exc:  # not serving yet
            last = exc
        else:
            if value:
                return value
            last = value
        time.sleep(0.2)
    raise AssertionError(f"never {what} (last: {last!r})")


def get_drone(live: dict) -> dict:
    return live["drones"][0]


def click_button(driver, button_id: str) -> None:
    wait_page(driver, lambda d: d.find_element("id", button_id).is_enabled(), f"#{button_id} enabled")
    driver.find_element("id", button_id).click()


def wait_result(driver, starts: str) -> str:
    return wait_page(driver, lambda d: (t := d.find_element("id", "c-result").text).startswith(starts) and t,
                     f"a result starting {starts!r}", timeout_s=15)


def choose(driver, select_id: str, value: str) -> None:
    from selenium.webdriver.support.select import Select

    wait_page(driver, lambda d: value in [o.get_attribute("value") for o in Select(d.find_element("id", select_id)).options],
              f"{value} in #{select_id}")
    Select(driver.find_element("id", select_id)).select_by_value(value)


def click_map_at(driver, lat: float, lon: float) -> None:
    """A real mouse click on the map where (lat, lon) is drawn."""
    from selenium.webdriver import ActionChains

    svg = driver.find_element("id", "map")
    dx, dy = driver.execute_script(
        "const [x, y] = xy(arguments[0], arguments[1]), m = document.getElementById('map'), p = m.createSVGPoint();"
        "p.x = x; p.y = y; const q = p.matrixTransform(m.getScreenCTM()), r = m.getBoundingClientRect();"
        "return [q.x - (r.left + r.width / 2), q.y - (r.top + r.height / 2)];", lat, lon)
    ActionChains(driver).move_to_element_with_offset(svg, round(dx), round(dy)).click().perform()


@pytest.mark.mosquitto
@pytest.mark.e2e  # a whole patrol: run alone
def test_an_operator_closes_a_false_alarm_and_sends_the_drone_to_a_point(browser, mosquitto_broker, tmp_path):
    run = RunInThread(mosquitto_broker.url, tmp_path, free_port())
    wait_run(run, lambda live: get_drone(live)["armed"], "a drone in the air")

    # Without the control token nothing changes the run, not even from this machine.
    send = {"command": "send_drone", "drone": "drone01", "lat": POINT[0], "lon": POINT[1]}
    assert run.post_command(send, None)[0] == 401
    assert run.post_command(send, VIEW)[0] == 403
    status, answer = run.post_command({"drone": "drone01"}, CONTROL)
    assert status == 400 and "send {\"command\": ..." in json.loads(answer)["error"]
    status, answer = run.post_command({"command": "launch_all"}, CONTROL)  # the run itself refuses it, naming why
    assert status == 409 and json.loads(answer)["error"].startswith("invalid OperatorCommand: command: Input should be")
    browser.get(f"{run.url}/?token={VIEW}")
    wait_page(browser, lambda d: d.find_element("id", "row-drone-drone01"), "the drone row")
    wait_page(browser, lambda d: d.execute_script("return document.body.dataset.control") == "false",
              "the page knowing it may not act")
    assert browser.find_element("id", "console").get_attribute("hidden") is not None, "buttons shown without CONTROL"
    assert_no_script_errors(browser)

    browser.get(f"{run.url}/?token={CONTROL}")
    wait_page(browser, lambda d: d.find_element("id", "console").is_displayed(), "the console with the control token")
    assert_no_script_errors(browser)  # live.js parsed and ran: no SyntaxError, no exception

    # The alarm: M01 alerted. The operator knows better: false alarm.
    wait_run(run, lambda live: any(i["incident_id"] == "scenario.alarm-1" and i["unit_id"] == "M01"
                                   for i in live["incidents"]), "M01 alerted for the alarm")
    choose(browser, "c-incident", "scenario.alarm-1")
    click_button(browser, "c-false")
    assert "closed as a false alarm; M01 stood down" in wait_result(browser, "accepted:")
    wait_run(run, lambda live: not get_drone(live)["watching"] and get_drone(live)["mode"] == "AUTO",
             "the drone back on its patrol")

    # Send the drone to a point: click the button, then the map.
    choose(browser, "c-drone", "drone01")
    click_button(browser, "c-send")
    click_map_at(browser, *POINT)
    assert "drone01 flying to" in wait_result(browser, "accepted:")
    drone = wait_run(run, lambda live: (d := get_drone(live))["mode"] == "GUIDED" and distance_m(
        d["lat"], d["lon"], *POINT) < 30 and d, "the drone over the point")
    assert drone["watching"] and drone["watching"][0].startswith("point ")
    wait_page(browser, lambda d: "point " in " ".join(d.find_element("id", "row-drone-drone01").text.split()),
              "the drone's overwatch of the point in its row")
    assert browser.find_element("id", "point-drone01"), "the point it was sent to, on the map"

    # Refused with the reason: the incident is closed already.
    click_button(browser, "c-recall")
    assert "drone01 flying home" in wait_result(browser, "accepted:")
    status, answer = run.post_command({"command": "close_false_alarm", "incident": "scenario.alarm-1"}, CONTROL)
    assert status == 409 and json.loads(answer)["error"] == "incident scenario.alarm-1 is already closed"
    click_button(browser, "c-end")
    click_button(browser, "c-end")  # asked twice: it sends every drone home
    wait_result(browser, "accepted: ending the shift")
    report = run.wait_finished(60)

    (false,) = report["false_alerts"]
    assert false["incident_id"] == "scenario.alarm-1" and false["closed_by_operator_s"] > 15, false
    assert "closed by the operator as a false alarm at" in (tmp_path / "report.html").read_text()
    store = EventStore(tmp_path, readonly=True)
    try:
        cancels = [e for e in store.events("alert_cancel") if e.data.get("unit_id") == "M01"]
        assert [e.data["reason"] for e in cancels] == ["closed by the operator as a false alarm"]
        commands = [e.data["command"] for e in store.events("operator_command") if e.data.get("ok")]
        assert commands == ["close_false_alarm", "send_drone", "recall_drone", "end_shift"]
    finally:
        store.close()


# ---------------------------------------------------------------------------------- each button
def test_each_button_sends_its_command(browser):
    """On a scripted state, with a stand-in for the run's answer: every console button posts the
    operator command it says, with the drone, incident, unit or cells chosen on the page."""
    from runloop.web import LiveWebView, Permission, Request, WebAccess

    from .test_web_view import ScriptedRun, get_plan, get_state

    sent: list[dict] = []
    box: dict = {}
    ready = threading.Event()

    async def main():
        view = LiveWebView(ScriptedRun(get_state()).get, get_plan(), push_every_wall_s=0.2,
                           access=WebAccess.view_token("v").with_control_token("c"))

        async def answer(writer, request: Request) -> None:
            sent.append(json.loads(request.body))
            ok = sent[-1]["command"] != "pause_drone"
            body = {"ok": ok, **({"detail": "done"} if ok else {"error": "drone02: no link to the vehicle"})}
            await view.respond(writer, 200 if ok else 409, "application/json", json.dumps(body).encode())
        view.add_route("/control/command", answer, needs=Permission.CONTROL, methods=("POST",), body_limit=4000)
        box["url"], box["loop"], box["stop"] = await view.start(), asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        await view.serve(box["stop"])

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        browser.get(box["url"] + "?token=c")
        wait_page(browser, lambda d: d.find_element("id", "console").is_displayed(), "the console")
        choose(browser, "c-drone", "drone02")
        click_button(browser, "c-pause")
        assert wait_result(browser, "refused:") == "refused: drone02: no link to the vehicle"
        click_button(browser, "c-recall")
        wait_result(browser, "accepted: done")
        choose(browser, "c-incident", "inc-fire-0001")
        choose(browser, "c-unit", "M02")
        click_button(browser, "c-dispatch")
        wait_page(browser, lambda d: len(sent) == 3, "the dispatch sent")
        click_button(browser, "c-cells")
        from selenium.webdriver import ActionChains

        for cell in ("DY-C0002", "DY-C0001"):  # a real click, labels on top of the cells or not
            ActionChains(browser).move_to_element(browser.find_element("css selector", f'polygon[data-cell="{cell}"]')
                                                  ).click().perform()
        click_button(browser, "c-patrol")
        wait_page(browser, lambda d: len(sent) == 4, "the cells sent")
        click_button(browser, "c-end")
        assert browser.find_element("id", "c-end").text == "end shift? click again" and len(sent) == 4
        click_button(browser, "c-end")
        wait_page(browser, lambda d: len(sent) == 5, "end shift sent")
        assert sent == [{"command": "pause_drone", "drone": "drone02"}, {"command": "recall_drone", "drone": "drone02"},
                        {"command": "dispatch_unit", "incident": "inc-fire-0001", "unit": "M02"},
                        {"command": "patrol_cells", "cells": ["DY-C0002", "DY-C0001"]}, {"command": "end_shift"}]
        errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert all("/control/command - " in e and " 409 " in e for e in errors), errors  # only the refusal's status
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)
