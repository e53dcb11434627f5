"""After-action report: `RUN_DIR/report.json` and `RUN_DIR/report.html` (+ `report.png`), from the
event store alone (`patrol report RUN_DIR` rebuilds them for any finished run).

Per scripted incident: kind, true position, when it started, first came into a camera's view,
was detected / alerted / accepted / reached / resolved, geolocation error, drone and unit.
Plus false alerts (incidents vision raised where no scripted incident was under way, with
their alert snapshots), coverage of the cells, missed incidents, failsafes and faults, sorties,
and `passed` with the reason for every failed criterion. The map is drawn from the data (no map tiles).

Here: reading the run record (once), matching incidents, pass/fail, writing the files. Sorties and
failsafes: `runloop/report_flights.py`; map and timeline: `runloop/report_map.py`; the page:
`runloop/templates/report.html.j2`.
"""
from __future__ import annotations

import json
import re
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.geo import distance_m
from runloop.eventstore import EventStore
from runloop.report_flights import failsafe_summary, sorties as flown_sorties
from runloop.report_map import MapData, PngLabel, map_png, map_svg, timeline_svg
from runloop.report_templates import render

MATCH_RADIUS_M = 60.0  # a detection this close to a scripted incident of the same kind is that incident
CLOSE_M = 20.0


@dataclass
class IncidentOutcome:
    name: str
    kind: str
    lat: float
    lon: float
    at_s: float
    started_s: float | None = None
    in_view_s: float | None = None
    detected_s: float | None = None
    incident_id: str | None = None
    detected_lat: float | None = None
    detected_lon: float | None = None
    geolocation_error_m: float | None = None
    drone_id: str | None = None
    alerted_s: float | None = None
    accepted_s: float | None = None
    arrived_s: float | None = None
    resolved_s: float | None = None
    unit_id: str | None = None
    alerts: int = 0
    overwatch_drone: str | None = None
    duplicate_ids: list = None  # other incident ids vision gave the same scripted incident

    def __post_init__(self) -> None:
        self.duplicate_ids = self.duplicate_ids or []

    @property
    def alert_latency_s(self) -> float | None:
        if self.alerted_s is None or self.detected_s is None:
            return None
        return max(0.0, self.alerted_s - self.detected_s)

    def as_dict(self) -> dict[str, Any]:
        d = {k: (round(v, 2) if isinstance(v, float) and k.endswith(("_s", "_m")) else v)
             for k, v in self.__dict__.items()}
        d["alert_latency_s"] = None if self.alert_latency_s is None else round(self.alert_latency_s, 2)
        d["true_position"] = [self.lat, self.lon]
        return d


def _match_incidents(store: EventStore, scenario: dict) -> list[IncidentOutcome]:
    outcomes = [IncidentOutcome(name=n, kind=i["kind"], lat=i["lat"], lon=i["lon"], at_s=i["at_s"])
                for n, i in zip(scenario.get("incident_names", []), scenario.get("incidents", []))]
    _place_scripted(store, {o.name: o for o in outcomes})
    id_to_outcome = _match_detections(store, outcomes)
    _follow_alerts(store, id_to_outcome)
    return outcomes


def _place_scripted(store: EventStore, by_name: dict[str, IncidentOutcome]) -> None:
    """When each scripted incident started, where the world really put it (a stopped car snaps
    onto a road) and when it first came into any drone's camera view."""
    for ev in store.events("incident_start"):
        if ev.subject in by_name:
            o = by_name[ev.subject]
            o.started_s = ev.data.get("started_s", ev.t_s)
            o.lat, o.lon = ev.data.get("lat", o.lat), ev.data.get("lon", o.lon)
    for ev in store.events("truth_in_view"):
        o = by_name.get(ev.subject)
        if o and (o.in_view_s is None or ev.t_s < o.in_view_s):  # the first of any drone's cameras
            o.in_view_s = ev.t_s


def _nearest_started(outcomes: list[IncidentOutcome], t_s: float, d: dict) -> tuple[IncidentOutcome | None, float]:
    """The scripted incident of the detection's kind, under way by then, nearest within MATCH_RADIUS_M."""
    best, best_d = None, MATCH_RADIUS_M
    for o in outcomes:
        if o.kind != d.get("kind") or not _had_started(o, t_s):
            continue
        dist = distance_m(o.lat, o.lon, d["lat"], d["lon"])
        if dist <= best_d:
            best, best_d = o, dist
    return best, best_d


def _match_detections(store: EventStore, outcomes: list[IncidentOutcome]) -> dict[str, IncidentOutcome]:
    """Vision's incident ids, each matched to the nearest scripted incident of its kind within
    MATCH_RADIUS_M. An incident counts as detected by the first id that places it within CLOSE_M
    (else the first matched at all); its other ids are duplicates. Returns id -> incident, with
    the alarms a camera confirmed (linked) counted as the incident they were linked to."""
    id_to_outcome: dict[str, IncidentOutcome] = {}
    matched: dict[str, list[tuple[float, str, float, dict]]] = {}
    for ev in store.events("detection"):
        if ev.subject in id_to_outcome or ev.data.get("lat") is None:
            continue
        best, best_d = _nearest_started(outcomes, ev.t_s, ev.data)
        if best is not None:
            id_to_outcome[ev.subject] = best
            matched.setdefault(best.name, []).append((ev.t_s, ev.subject, best_d, ev.data))
    for o in outcomes:
        found = matched.get(o.name, [])
        if not found:
            continue
        t_s, iid, dist, d = ([m for m in found if m[2] <= CLOSE_M] or found)[0]
        o.detected_s, o.incident_id, o.drone_id = t_s, iid, d.get("drone_id")
        o.detected_lat, o.detected_lon, o.geolocation_error_m = d["lat"], d["lon"], dist
        o.duplicate_ids = [m[1] for m in found if m[1] != iid]
    for ev in store.events("incident_status"):  # an alarm a camera confirmed: its alerts are the incident's
        for linked_id in ev.data.get("linked") or ():
            if linked_id in id_to_outcome and ev.subject not in id_to_outcome:
                id_to_outcome[ev.subject] = id_to_outcome[linked_id]
    return id_to_outcome


# A unit's ack action -> the incident's field it sets (the first time)
_ACK_FIELDS = {"accept": "accepted_s", "arrived": "arrived_s", "resolved": "resolved_s"}


def _follow_alerts(store: EventStore, id_to_outcome: dict[str, IncidentOutcome]) -> None:
    """Each matched incident's alerts, its unit's accept / arrival / resolve, and the drone that
    held overwatch over it."""
    alert_to_outcome: dict[str, IncidentOutcome] = {}
    for ev in store.events("alert"):
        o = id_to_outcome.get(ev.data.get("incident_id", ""))
        if o is None:
            continue
        alert_to_outcome[ev.subject] = o
        o.alerts += 1
        if o.alerted_s is None:
            o.alerted_s = ev.t_s
    for ev in store.events("ack"):
        o = alert_to_outcome.get(ev.subject)
        field = _ACK_FIELDS.get(ev.data.get("action"))
        if o is None or field is None or getattr(o, field) is not None:
            continue
        setattr(o, field, ev.t_s)
        if field == "accepted_s":
            o.unit_id = ev.data.get("unit_id")
    for ev in store.events("incident_status"):
        o = id_to_outcome.get(ev.subject)
        if o and ev.data.get("status") == "arrived" and o.arrived_s is None:
            o.arrived_s = ev.t_s  # the controller saw the unit within its arrive radius
    for ev in store.events("overwatch_start"):
        o = id_to_outcome.get(ev.data.get("incident_id", ""))
        if o and o.overwatch_drone is None:
            o.overwatch_drone = ev.subject


# A detection this much before its incident's start still matches it: an intruder is reported
# within the zone's margin_m just before stepping in, and frames come at the camera's rate.
START_TOLERANCE_S = 2.0


def _had_started(outcome: IncidentOutcome, t_s: float) -> bool:
    """A detection can only be of a scripted incident that had started by then: a fire seen
    500 s before the scripted one ignites there is a false alert, not an early detection."""
    return outcome.started_s is not None and outcome.started_s <= t_s + START_TOLERANCE_S


# ------------------------------------------------------------------------------ alarms
def _alarms(store: EventStore, scenario: dict) -> list[dict[str, Any]]:
    """Each scripted alarm (sent as scenario.alarm-N): when it was sent, the drone retasked to it
    (scenario seconds and wall milliseconds after sending) and on scene over it, the unit alerted,
    on scene and done, whether a camera confirmed it, and when the drone went back to its patrol."""
    ids = [f"scenario.alarm-{n + 1}" for n in range(len(scenario.get("alarms", [])))]
    rows = {iid: {"incident_id": iid, **{k: spec.get(k) for k in ("at_s", "lat", "lon", "kind", "text")},
                  "sent_s": None, "drone_id": None, "drone_distance_m": None, "retasked_s": None,
                  "retask_s": None, "retask_wall_ms": None, "drone_on_scene_s": None, "overwatch_failed": None,
                  "unit_id": None, "alerted_s": None, "accepted_s": None, "unit_on_scene_s": None,
                  "resolved_s": None, "confirmed_s": None, "confirmed_by": [], "patrol_resumed_s": None}
            for iid, spec in zip(ids, scenario.get("alarms", []))}
    sent_wall: dict[str, float] = {}

    def first(row: dict, key: str, value) -> None:
        if row[key] is None:
            row[key] = round(value, 2) if isinstance(value, float) else value

    for ev in store.events("alarm_sent", "overwatch_start", "overwatch_on_scene", "overwatch_failed", "alert", "ack",
                           "incident_status", "patrol_resumed"):
        row = rows.get(ev.subject if ev.kind in ("alarm_sent", "incident_status") else ev.data.get("incident_id", ""))
        if row is None:
            continue
        if ev.kind == "alarm_sent":
            first(row, "sent_s", ev.t_s)
            sent_wall[row["incident_id"]] = ev.wall_ts
        elif ev.kind == "overwatch_start" and row["drone_id"] is None:
            row["drone_id"], row["drone_distance_m"] = ev.subject, ev.data.get("distance_m")
            first(row, "retasked_s", ev.t_s)
            if row["sent_s"] is not None:
                row["retask_s"] = round(ev.t_s - row["sent_s"], 2)
                row["retask_wall_ms"] = round((ev.wall_ts - sent_wall[row["incident_id"]]) * 1000.0, 1)
        elif ev.kind == "overwatch_on_scene":
            first(row, "drone_on_scene_s", ev.t_s)
        elif ev.kind == "overwatch_failed":
            first(row, "overwatch_failed", str(ev.data.get("detail")))
        elif ev.kind == "alert" and row["alerted_s"] is None:
            row["alerted_s"], row["unit_id"] = round(ev.t_s, 2), ev.data.get("unit_id")
        elif ev.kind == "incident_status":
            if ev.data.get("linked") and row["confirmed_s"] is None:
                row["confirmed_s"], row["confirmed_by"] = round(ev.t_s, 2), ev.data["linked"]
            if ev.data.get("status") == "accepted":
                first(row, "accepted_s", ev.t_s)
            elif ev.data.get("status") == "arrived":
                first(row, "unit_on_scene_s", ev.t_s)
            elif ev.data.get("status") == "resolved":
                first(row, "resolved_s", ev.t_s)
        elif ev.kind == "patrol_resumed":
            first(row, "patrol_resumed_s", ev.t_s)
    for ev in store.events("ack"):  # a unit reporting arrived before the controller saw it close
        row = next((r for r in rows.values() if r["alerted_s"] is not None
                    and ev.subject.startswith(r["incident_id"] + ".")), None)
        if row is not None and ev.data.get("action") == "arrived" and (
                row["unit_on_scene_s"] is None or ev.t_s < row["unit_on_scene_s"]):
            row["unit_on_scene_s"] = round(ev.t_s, 2)
    return list(rows.values())


# ------------------------------------------------------------------------------ false alerts
def _false_alerts(store: EventStore, run_dir: Path, outcomes: list[IncidentOutcome]) -> list[dict[str, Any]]:
    """Incidents vision raised that match no scripted incident under way when raised (nor are
    a duplicate of one), and incidents the operator closed as false alarms (`closed_by_operator_s`):
    each sends an officer for nothing. With its alerts and snapshot."""
    matched = {o.incident_id for o in outcomes if o.incident_id} | {d for o in outcomes for d in o.duplicate_ids}
    alerts: dict[str, list[dict]] = {}
    for ev in store.events("alert"):
        alerts.setdefault(ev.data.get("incident_id", ""), []).append({"alert_id": ev.subject,
                                                                      "unit_id": ev.data.get("unit_id")})
    out: dict[str, dict[str, Any]] = {}
    for ev in store.events("detection"):
        if ev.subject in matched or ev.subject in out:
            continue
        d = ev.data
        snap = Path("snapshots") / f"{snapshot_name(ev.subject)}.jpg"
        out[ev.subject] = {"incident_id": ev.subject, "kind": d.get("kind"), "t_s": round(ev.t_s, 1),
                           "drone_id": d.get("drone_id"), "lat": d.get("lat"), "lon": d.get("lon"),
                           "confidence": d.get("confidence"), "alerts": alerts.get(ev.subject, []),
                           "snapshot": str(snap) if (run_dir / snap).is_file() else None}
    for ev in store.events("incident_status"):  # the operator's word: closed as a false alarm
        if ev.data.get("status") != "false_alarm":
            continue
        row = out.setdefault(ev.subject, {"incident_id": ev.subject, "kind": ev.data.get("kind"), "t_s": round(ev.t_s, 1),
                                          "drone_id": None, "lat": None, "lon": None, "confidence": None,
                                          "alerts": alerts.get(ev.subject, []), "snapshot": None})
        row["closed_by_operator_s"] = round(ev.t_s, 1)
    return list(out.values())


def snapshot_name(incident_id: str) -> str:
    """The file name (without .jpg) under RUN_DIR/snapshots/ of an incident's alert snapshot."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", incident_id)[:80] or "_"


def _alerts_lost(store: EventStore) -> list[str]:
    issued = {ev.subject: ev.data.get("unit_id") for ev in store.events("alert")}
    issued.update({ev.subject: ev.data.get("unit_id") for ev in store.events("alert_issued")})
    received = {ev.subject for ev in store.events("alert_received")}
    cancelled = {ev.subject for ev in store.events("alert_cancel")}
    # An alert stood down before delivery is not lost; anything else must have reached its unit.
    return sorted(a for a in issued if a not in received and a not in cancelled)


def _run_record(run_dir: Path) -> closing[EventStore]:
    return closing(EventStore(run_dir, readonly=True))


def build_report(run_dir: Path) -> dict[str, Any]:
    """The report as a dict (also written as report.json by `write_report`)."""
    with _run_record(run_dir) as store:
        return _report(store, Path(run_dir))


def _report(store: EventStore, run_dir: Path) -> dict[str, Any]:
    scenario = store.meta("scenario", {})
    criteria = scenario.get("pass", {})
    outcomes = _match_incidents(store, scenario)
    lost = _alerts_lost(store)
    sorties = flown_sorties(store)
    coverage = store.meta("coverage", {})
    failsafes = [{"t_s": round(e.t_s, 1), "drone_id": e.subject, **e.data}
                 for e in store.events("vehicle_event") if e.data.get("event") in ("failsafe", "low_battery",
                                                                                     "link_lost", "link_regained")]
    faults = [{"t_s": round(e.t_s, 1), "fault": e.subject, **e.data} for e in store.events("fault")]
    refused = [{"t_s": round(e.t_s, 1), "fault": e.subject, **e.data} for e in store.events("fault_refused")]
    vehicle_events = [(e.t_s, e.subject, e.data.get("event"), str(e.data.get("detail", "")))
                      for e in store.events("vehicle_event")]
    replans = [(e.t_s, e.subject, e.data) for e in store.events("sortie_replanned")]
    overwatch = [{"t_s": round(e.t_s, 1), "drone_id": e.subject, "what": e.kind, **e.data}
                 for e in store.events("overwatch_start", "overwatch_end", "patrol_resumed", "overwatch_failed")]
    errors = [{"t_s": round(e.t_s, 1), "stage": e.subject, **e.data} for e in store.events("stage_error")]
    video = [{"t_s": round(e.t_s, 1), "event": e.kind, "drone_id": e.subject.removeprefix("eyes-"), **e.data}
             for e in store.events("video_opened", "video_lost", "video_ended")]
    false_alerts = _false_alerts(store, run_dir, outcomes)
    alarms = _alarms(store, scenario)
    run = store.meta("run", {})
    shift = None
    if scenario.get("shift") is not None:  # the shift's revisit section (runloop/shift_report.py)
        from runloop.shift_report import shift_summary, store_events

        shift = shift_summary(coverage, store.meta("cell_targets", {}), store_events(store),
                              run.get("ended_s") or scenario.get("duration_s", 0.0))

    failures: list[str] = []

    def need(flag: str, ok_of, what: str) -> None:
        if criteria.get(flag):
            bad = [o.name for o in outcomes if not ok_of(o)]
            if bad:
                failures.append(f"{what}: {', '.join(bad)}")

    need("all_incidents_detected", lambda o: o.detected_s is not None, "not detected")
    need("all_incidents_alerted", lambda o: o.alerted_s is not None, "no unit alerted")
    need("all_incidents_accepted", lambda o: o.accepted_s is not None, "no unit accepted")
    need("all_incidents_reached", lambda o: o.arrived_s is not None, "no unit arrived")
    if criteria.get("no_alert_lost") and lost:
        failures.append(f"alerts not received by their unit: {', '.join(lost)}")
    if criteria.get("sorties_completed"):
        bad = [f"{s['drone_id']}/{s['sortie']} ({s['outcome']})" for s in sorties if not s["outcome"].done_with]
        if not sorties:
            bad = ["no sortie flown"]
        if bad:
            failures.append(f"sorties not completed or resumed: {', '.join(bad)}")
    if criteria.get("max_alert_latency_s") is not None:
        lim = criteria["max_alert_latency_s"]
        bad = [f"{o.name} {o.alert_latency_s:.1f} s" for o in outcomes
               if o.alert_latency_s is not None and o.alert_latency_s > lim]
        if bad:
            failures.append(f"alert latency over {lim} s: {', '.join(bad)}")
    if criteria.get("max_geolocation_error_m") is not None:
        lim = criteria["max_geolocation_error_m"]
        bad = [f"{o.name} {o.geolocation_error_m:.1f} m" for o in outcomes
               if o.geolocation_error_m is not None and o.geolocation_error_m > lim]
        if bad:
            failures.append(f"geolocation error over {lim} m: {', '.join(bad)}")
    if criteria.get("min_coverage_pct") is not None:
        pct = coverage.get("coverage_pct", 0.0)
        if pct < criteria["min_coverage_pct"]:
            failures.append(f"coverage {pct:.1f} % below {criteria['min_coverage_pct']} %")
    if criteria.get("max_false_alerts") is not None and len(false_alerts) > criteria["max_false_alerts"]:
        failures.append(f"{len(false_alerts)} false alerts (at most {criteria['max_false_alerts']}): "
                        + ", ".join(f"{f['incident_id']} {f['kind']} at {f['t_s']} s" for f in false_alerts))
    for f in refused:  # the scenario was not exercised as written: the trainer must know
        failures.append(f"fault not injected: {f['fault']} on drone {f.get('drone')} at {f['t_s']} s: "
                        f"{f.get('reason')}")
    if shift is not None:
        from runloop.shift_report import shift_failures

        failures.extend(shift_failures(shift, criteria))
    if errors:
        failures.append(f"stage errors: {'; '.join(e['stage'] + ': ' + str(e.get('error')) for e in errors)}")

    return {
        "schema": "patrol.report/1",
        "scenario": scenario.get("name"),
        "run": run,
        "passed": not failures,
        "failures": failures,
        "criteria": criteria,
        "incidents": [o.as_dict() for o in outcomes],
        "alarms": alarms,  # scripted alarms: drone retasked and on scene, unit alerted and on scene
        "missed_incidents": [o.name for o in outcomes if o.detected_s is None],
        "false_alerts": false_alerts,
        "alerts_lost": lost,
        "coverage": coverage,
        "sorties": sorties,
        "failsafes": failsafes,
        "faults": faults,
        "faults_refused": refused,
        "failsafe_summary": failsafe_summary(vehicle_events, faults, sorties, replans),
        "overwatch": overwatch,
        "stage_errors": errors,
        "video": video,  # real video sources (--video): opened, lost, ended
        "shift": shift,  # per cell visits and longest gaps, drones lost (runloop/shift_report.py)
    }




# ------------------------------------------------------------------------------------ writing
_INCIDENT_COLUMNS = ["name", "kind", "started_s", "in_view_s", "detected_s", "geolocation_error_m", "drone_id",
                     "overwatch_drone", "alerted_s", "alert_latency_s", "unit_id", "accepted_s", "arrived_s",
                     "resolved_s"]
_ALARM_COLUMNS = ["incident_id", "kind", "text", "sent_s", "drone_id", "drone_distance_m", "retask_s",
                  "retask_wall_ms", "drone_on_scene_s", "unit_id", "alerted_s", "unit_on_scene_s", "confirmed_by",
                  "patrol_resumed_s"]


def _html(report: dict, drawn: MapData) -> str:
    """report.html from runloop/templates/report.html.j2, every value escaped."""
    return render("report.html.j2", r=report, map_svg=map_svg(drawn, report), timeline_svg=timeline_svg(report),
                  incident_cols=_INCIDENT_COLUMNS, alarm_cols=_ALARM_COLUMNS,
                  fault_params=lambda f: {k: v for k, v in f.items() if k not in ("t_s", "fault")})


def _png(run_dir: Path, report: dict, path: Path) -> list[PngLabel]:
    """report.png of a built report, on its own (write_report draws it from the store it already read)."""
    with _run_record(run_dir) as store:
        drawn = MapData.read(store)
    return map_png(drawn, report, path)


def write_report(run_dir: Path) -> dict[str, Any]:
    """Build and write report.json, report.html and report.png; returns the report."""
    run_dir = Path(run_dir)
    with _run_record(run_dir) as store:  # read once: the report and what its drawings need
        report = _report(store, run_dir)
        drawn = MapData.read(store)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (run_dir / "report.html").write_text(_html(report, drawn))
    try:
        map_png(drawn, report, run_dir / "report.png")
    except Exception as exc:  # the PNG is a convenience; the JSON and HTML are the record
        report.setdefault("notes", []).append(f"report.png not drawn: {exc}")
    if report.get("shift"):
        from runloop.shift_report import coverage_png

        try:
            coverage_png(report["shift"], run_dir / "coverage.png")
        except Exception as exc:
            report.setdefault("notes", []).append(f"coverage.png not drawn: {exc}")
    return report
