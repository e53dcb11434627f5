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
    store.add(20.0, "incident_start", "crowd-2", kind="crowd", lat=CROWD["lat"], lon=CROWD["lon"])
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


def get_run_with_an_early_fire(run_dir, max_false_alerts: int | None = 0):
    """A fire scripted to ignite at 510 s, and vision calling a fire on that spot at 10 s
    (alerted, with its snapshot kept by the recorder), then the real one at 515 s."""
    store = EventStore(run_dir)
    store.set_meta("scenario", {"name": "early", "incidents": [{**FIRE, "at_s": 510.0}], "incident_names": ["fire-1"],
                                "pass": {"all_incidents_detected": True, "max_false_alerts": max_false_alerts}})
    store.set_meta("run", {"ended_s": 600.0})
    store.add(10.0, "detection", "inc-d1-1", state="new", kind="fire", lat=32.01001, lon=119.59501,
              drone_id="drone01", confidence=0.8)
    store.add(11.0, "alert", "A1", unit_id="M01", incident_id="inc-d1-1")
    store.add(510.0, "incident_start", "fire-1", kind="fire", lat=FIRE["lat"], lon=FIRE["lon"])
    store.add(515.0, "detection", "inc-d1-2", state="new", kind="fire", lat=32.01002, lon=119.59502,
              drone_id="drone01", confidence=0.9)
    store.close()
    (run_dir / "snapshots").mkdir()
    (run_dir / "snapshots" / "inc-d1-1.jpg").write_bytes(b"\xff\xd8 a jpeg")
    return run_dir


def test_an_alert_raised_before_its_incident_started_is_false(tmp_path):
    """The fire seen at 10 s is not the fire that ignites there at 510 s: it is a false alert,
    listed with its alert and snapshot, and the run fails its max_false_alerts of 0."""
    report = write_report(get_run_with_an_early_fire(tmp_path))
    (fire,) = report["incidents"]
    assert (fire["incident_id"], fire["detected_s"]) == ("inc-d1-2", 515.0)
    (false,) = report["false_alerts"]
    assert (false["incident_id"], false["kind"], false["t_s"], false["drone_id"]) == ("inc-d1-1", "fire", 10.0, "drone01")
    assert false["alerts"] == [{"alert_id": "A1", "unit_id": "M01"}]
    assert false["snapshot"] == "snapshots/inc-d1-1.jpg"
    assert not report["passed"]
    assert report["failures"] == ["1 false alerts (at most 0): inc-d1-1 fire at 10.0 s"]
    page = (tmp_path / "report.html").read_text()
    assert '<img src="snapshots/inc-d1-1.jpg"' in page and "inc-d1-1" in page


def test_false_alerts_are_counted_but_pass_when_not_limited(tmp_path):
    report = build_report(get_run_with_an_early_fire(tmp_path, max_false_alerts=None))
    assert len(report["false_alerts"]) == 1 and report["passed"], report["failures"]


def test_a_detection_as_its_incident_starts_is_no_false_alert(tmp_path):
    """The world records a timed fire's start at the step after its at_s (with the real start
    in started_s); a detection 1 s before that real start (frame timing) is still the fire."""
    store = EventStore(tmp_path)
    store.set_meta("scenario", {"name": "on-time", "incidents": [FIRE], "incident_names": ["fire-1"],
                                "pass": {"max_false_alerts": 0}})
    store.add(9.0, "detection", "inc-d1-1", state="new", kind="fire", lat=32.01001, lon=119.59501, drone_id="drone01")
    store.add(14.0, "incident_start", "fire-1", kind="fire", lat=FIRE["lat"], lon=FIRE["lon"], started_s=10.0)
    store.close()
    report = build_report(tmp_path)
    assert report["incidents"][0]["started_s"] == 10.0 and report["incidents"][0]["detected_s"] == 9.0
    assert report["false_alerts"] == [] and report["passed"], report["failures"]


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


# Three incidents within ~15 m of each other (a car stopped next to a crowd next to a fire): the
# case where names drawn at a fixed offset from their dots used to print over one another.
CLUSTER = [{"kind": "fire", "lat": 32.00800, "lon": 119.59500, "at_s": 10.0},
           {"kind": "crowd", "lat": 32.00805, "lon": 119.59505, "at_s": 20.0},
           {"kind": "stopped_vehicle", "lat": 32.00798, "lon": 119.59510, "at_s": 30.0}]


def get_clustered_run(run_dir):
    """A run whose three incidents sit a few metres apart inside one cell."""
    store = EventStore(run_dir)
    store.set_meta("scenario", {"name": "cluster", "incidents": CLUSTER, "pass": {},
                                "incident_names": ["fire-1", "crowd-2", "stopped_vehicle-3"]})
    store.set_meta("cells_geo", {"C1": [[(32.006, 119.593), (32.010, 119.593), (32.010, 119.597), (32.006, 119.597),
                                         (32.006, 119.593)]]})
    store.set_meta("run", {"ended_s": 100.0})
    for inc, name in zip(CLUSTER, ["fire-1", "crowd-2", "stopped_vehicle-3"]):
        store.add(inc["at_s"], "incident_start", name, kind=inc["kind"], lat=inc["lat"], lon=inc["lon"])
    for i in range(10):  # a unit that rode to the fire and stopped there
        store.add_unit("M01", 40.0 + i, 32.0070 + i * 1e-4, 119.5950, "busy")
    store.close()
    return run_dir


def get_svg_label_boxes(html: str) -> list[tuple[float, float, float, float]]:
    """(x, y, w, h) of every incident and unit label on the HTML map, as drawn."""
    svg = ET.fromstring("<svg" + html.split("<svg")[1].split("</svg>")[0] + "</svg>")
    return [tuple(float(v) for v in t.get("data-box").split())
            for t in svg.iter("{http://www.w3.org/2000/svg}text") if t.get("class") in ("incident-label", "unit-label")]


def get_svg_markers(html: str) -> list[tuple[float, float, float]]:
    """(cx, cy, r) of every incident dot on the HTML map."""
    svg = ET.fromstring("<svg" + html.split("<svg")[1].split("</svg>")[0] + "</svg>")
    return [(float(c.get("cx")), float(c.get("cy")), float(c.get("r")))
            for c in svg.iter("{http://www.w3.org/2000/svg}circle")]


def assert_boxes_apart(boxes) -> None:
    """No two (x, y, w, h) boxes share any area."""
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            apart = a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1]
            assert apart, f"labels overlap: {a} and {b}"


def assert_box_clear_of(box, cx: float, cy: float, r: float) -> None:
    """The box does not cover any part of the circle (cx, cy, r)."""
    nx, ny = min(max(cx, box[0]), box[0] + box[2]), min(max(cy, box[1]), box[1] + box[3])
    assert (nx - cx) ** 2 + (ny - cy) ** 2 >= r * r - 1e-6, f"label {box} covers the marker at {(cx, cy)}"


def test_map_labels_of_close_incidents_do_not_overlap(tmp_path):
    """HTML map: the three names of incidents a few metres apart, and the unit that stopped at the
    fire, are each readable: no label box overlaps another or covers an incident dot, and the
    moved labels keep a leader line."""
    write_report(get_clustered_run(tmp_path))
    html = (tmp_path / "report.html").read_text()
    boxes = get_svg_label_boxes(html)
    markers = get_svg_markers(html)
    assert len(boxes) == 4 and len(markers) == 3
    assert_boxes_apart(boxes)
    for box in boxes:
        for cx, cy, r in markers:
            assert_box_clear_of(box, cx, cy, r)
    assert "<line" in html.split("<svg")[1]  # at least one label was moved off its dot


def test_png_labels_of_close_incidents_do_not_overlap(tmp_path):
    """report.png: the names' rendered extents (measured by matplotlib) do not overlap each other
    or cover the incident dots."""
    from runloop.report import _png, build_report

    run_dir = get_clustered_run(tmp_path)
    report = build_report(run_dir)
    labels = _png(run_dir, report, tmp_path / "report.png")
    assert [label.text for label in labels] == ["fire-1", "crowd-2", "stopped_vehicle-3"]
    boxes = [label.box for label in labels]
    assert_boxes_apart(boxes)
    for label in labels:
        for box in boxes:
            assert_box_clear_of(box, *label.point, 5.0)  # the dot: s=90 points^2 is ~7 px across at 110 dpi


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_report_of_a_damaged_run_record_names_the_file(tmp_path, capsys, damage):
    """A truncated or overwritten events.sqlite: `patrol report` exits 2 naming the file, no traceback."""
    get_recorded_run(tmp_path)
    db = tmp_path / "events.sqlite"
    data = db.read_bytes()
    db.write_bytes(data[:len(data) // 3] if damage == "truncated" else b"not a database " * 200)
    assert patrol.main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(db) in err and "Traceback" not in err
    assert not (tmp_path / "report.json").exists()


def test_report_lists_failsafes_with_cause_and_outcome_and_fails_on_a_refused_fault(tmp_path):
    """A link cut the vehicle answered with RTL (its STATUSTEXT lost with the link) is reported as
    'GCS link lost' with where it ended; a battery fault the vehicle refused fails the run by name."""
    get_recorded_run(tmp_path, criteria={})
    store = EventStore(tmp_path)
    store.add(120.0, "fault", "link_cut", drone=1, drone_id="drone01", seconds=30)
    store.add(121.3, "vehicle_event", "drone01", event="link_lost", detail="no HEARTBEAT for 1.2 s")
    store.add(126.0, "vehicle_event", "drone01", event="failsafe", detail="vehicle switched itself to RTL")
    store.add(180.0, "vehicle_event", "drone01", event="landed", detail="")
    store.add(181.0, "sortie_replanned", "drone01", sortie="sortie01", cells=["C1"], new_sorties=["sortie01-replan1"])
    store.add(130.0, "fault_refused", "battery", drone=2, reason="drone02 has no settable SIM_BATT_VOLTAGE")
    store.close()
    report = build_report(tmp_path)
    [row] = report["failsafe_summary"]
    assert row["drone_id"] == "drone01" and row["cause"].startswith("GCS link lost (scripted link_cut")
    assert row["outcome"] == "returned, landed at 180.0 s; cells re-planned: C1 -> sortie01-replan1"
    assert not report["passed"]
    assert any(f.startswith("fault not injected: battery on drone 2") for f in report["failures"])


def test_names_from_the_scenario_cannot_inject_markup(tmp_path):
    """report.html is rendered with every value escaped: a scenario or incident name with markup
    shows as text, and the map stays well-formed SVG."""
    store = EventStore(tmp_path)
    store.set_meta("scenario", {"name": "<script>alert(1)</script>", "incidents": [FIRE],
                                "incident_names": ['fire "<b>1</b>"'], "pass": {}})
    store.add(10.0, "incident_start", 'fire "<b>1</b>"', kind="fire", lat=FIRE["lat"], lon=FIRE["lon"])
    store.add(12.0, "fault_refused", "battery", drone=2, reason="<img src=x onerror=alert(1)>")
    store.close()
    write_report(tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>1</b>" not in page and "<img" not in page
    svg = ET.fromstring("<svg" + page.split("<svg")[1].split("</svg>")[0] + "</svg>")
    assert [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "incident-label"] \
        == ['fire "<b>1</b>"']


def test_the_run_record_is_opened_once_per_report(tmp_path, monkeypatch):
    """write_report reads the report and its drawings from one opening of events.sqlite."""
    import runloop.report

    opened = []

    class CountingStore(EventStore):
        def __init__(self, *args, **kwargs):
            opened.append(args[0])
            super().__init__(*args, **kwargs)

    get_recorded_run(tmp_path)
    monkeypatch.setattr(runloop.report, "EventStore", CountingStore)
    write_report(tmp_path)
    assert len(opened) == 1 and (tmp_path / "report.png").exists()


def test_a_mode_change_then_the_vehicles_words_are_one_failsafe_with_their_cause(tmp_path):
    """The vehicle switching itself to RTL and its 'Battery Failsafe' text 2 s later are one
    failsafe, caused by low battery; a GCS failsafe on another drone keeps its own row."""
    get_recorded_run(tmp_path, criteria={})
    store = EventStore(tmp_path)
    store.add(126.0, "vehicle_event", "drone01", event="failsafe", detail="vehicle switched itself to RTL")
    store.add(128.0, "vehicle_event", "drone01", event="failsafe", detail="Battery Failsafe")
    store.add(129.0, "vehicle_event", "drone02", event="failsafe", detail="GCS Failsafe")
    store.close()
    rows = build_report(tmp_path)["failsafe_summary"]
    assert [(r["drone_id"], r["cause"]) for r in rows] == [("drone01", "low battery"), ("drone02", "GCS link lost")]
    assert rows[0]["details"] == ["vehicle switched itself to RTL", "Battery Failsafe"]
