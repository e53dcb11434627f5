"""The after-action report, built from a recorded run (an event store written by hand here),
and `patrol report RUN_DIR`."""
import json
import xml.etree.ElementTree as ET

import pytest

import patrol
from runloop import RunError
from runloop.eventstore import EventStore
from runloop.report import build_report, write_report

FIRE = {"kind": "fire", "lat": 32.0100, "lon": 119.5950, "at_s": 10.0}
CROWD = {"kind": "crowd", "lat": 32.0070, "lon": 119.5947, "at_s": 20.0}


def get_recorded_run(run_dir, *, crowd_alert_received: bool = True, criteria: dict | None = None):
    """A finished run: the fire handled end to end; the crowd detected and alerted."""
    store = EventStore(run_dir)
    store.set_meta("scenario", {"name": "recorded", "incidents": [FIRE, CROWD], "incident_names": ["fire-1", "crowd-2"],
                                "pass": criteria or {"all_incidents_detected": True, "all_incidents_alerted": True,
                                                     "no_alert_lost": True, "max_alert_latency_s": 30,
                                                     "max_geolocation_error_m": 15}})
    store.set_meta("cells_geo", {"C1": [[(32.009, 119.594), (32.011, 119.594), (32.011, 119.596), (32.009, 119.596),
                                         (32.009, 119.594)]]})
    store.set_meta("docks", [{"grid_id": "DOCK", "lat": 32.0089, "lon": 119.5948}])
    store.set_meta("coverage", {"coverage_pct": 97.5, "cells_seen": 1, "cells": {"C1": {"seen_fraction": 0.975}}})
    store.set_meta("run", {"ended_s": 300.0})
    store.add(0.0, "sortie_start", "drone01", sortie="sortie01", grid_ids=["C1"])
    store.add(10.0, "incident_start", "fire-1", kind="fire", lat=FIRE["lat"], lon=FIRE["lon"])
    store.add(40.0, "detection", "inc-fire-1", state="new", kind="fire", lat=32.01002, lon=119.59502, drone_id="drone01")
    store.add(41.0, "overwatch_start", "drone01", incident_id="inc-fire-1")
    store.add(42.0, "alert", "A1", unit_id="M01", incident_id="inc-fire-1")
    store.add(42.1, "alert_received", "A1", unit_id="M01")
    store.add(47.0, "ack", "A1", unit_id="M01", action="accept")
    store.add(90.0, "ack", "A1", unit_id="M01", action="arrived")
    store.add(60.0, "detection", "inc-crowd-2", state="new", kind="crowd", lat=32.0070, lon=119.5947, drone_id="drone02")
    store.add(100.0, "alert", "A2", unit_id="M02", incident_id="inc-crowd-2")
    if crowd_alert_received:
        store.add(100.2, "alert_received", "A2", unit_id="M02")
    store.add(250.0, "sortie_done", "drone01", sortie="sortie01", detail="flown")
    for i in range(20):
        store.add_pose("drone01", i * 10.0, 32.009 + i * 1e-4, 119.5948, 60.0, "AUTO", 90.0 - i, True)
        store.add_unit("M01", i * 10.0, 32.005 + i * 2.5e-4, 119.5950, "busy")
    store.close()
    return run_dir


def test_report_follows_each_incident_from_start_to_arrival(tmp_path):
    """Per incident: detection, geolocation error, drone, alert, unit, accept and arrival times."""
    report = build_report(get_recorded_run(tmp_path))
    fire, crowd = report["incidents"]
    assert (fire["detected_s"], fire["alerted_s"], fire["accepted_s"], fire["arrived_s"]) == (40.0, 42.0, 47.0, 90.0)
    assert fire["unit_id"] == "M01" and fire["overwatch_drone"] == "drone01" and fire["alert_latency_s"] == 2.0
    assert 1.0 < fire["geolocation_error_m"] < 5.0
    assert crowd["accepted_s"] is None and crowd["alert_latency_s"] == 40.0


def test_report_fails_the_criteria_it_was_given(tmp_path):
    """The crowd's alert came 40 s after detection: over the 30 s limit, so the run fails and says why."""
    report = build_report(get_recorded_run(tmp_path))
    assert not report["passed"]
    assert report["failures"] == ["alert latency over 30 s: crowd-2 40.0 s"]


def test_an_alert_its_unit_never_got_is_lost(tmp_path):
    """An alert published but never received (nor cancelled) is reported lost."""
    report = build_report(get_recorded_run(tmp_path, crowd_alert_received=False))
    assert report["alerts_lost"] == ["A2"]
    assert any("not received" in f for f in report["failures"])


def test_report_passes_when_the_criteria_hold(tmp_path):
    """Only what the scenario asks for is checked."""
    report = build_report(get_recorded_run(tmp_path, criteria={"all_incidents_detected": True,
                                                               "min_coverage_pct": 95}))
    assert report["passed"], report["failures"]


def test_report_files_and_cli_exit_status(tmp_path, capsys):
    """`patrol report RUN_DIR` writes json, html (inline SVG map + timeline) and png; exit 1 on failure."""
    get_recorded_run(tmp_path)
    assert patrol.main(["report", str(tmp_path)]) == 1
    assert "FAILED: alert latency" in capsys.readouterr().out
    html = (tmp_path / "report.html").read_text()
    assert html.count("<svg") == 2 and "fire-1" in html
    assert "<img" not in html and "tile" not in html  # the map is drawn from the data, no external tiles
    for chunk in html.split("<svg")[1:]:  # both drawings are well-formed SVG
        svg = ET.fromstring("<svg" + chunk.split("</svg>")[0] + "</svg>")
        assert len(svg) > 5
    assert json.loads((tmp_path / "report.json").read_text())["scenario"] == "recorded"
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_report_of_a_dir_without_a_run_is_a_clear_error(tmp_path, capsys):
    """No events.sqlite: exit 2 naming what is missing."""
    with pytest.raises(RunError, match="events.sqlite"):
        write_report(tmp_path)
    assert patrol.main(["report", str(tmp_path)]) == 2
    assert "events.sqlite" in capsys.readouterr().err
