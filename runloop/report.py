"""After-action report: `RUN_DIR/report.json` and `RUN_DIR/report.html` (+ `report.png`), from the
event store alone (`patrol report RUN_DIR` rebuilds them for any finished run).

Per scripted incident: kind, true position, when it started, first came into a camera's view,
was detected / alerted / accepted / reached / resolved, geolocation error, drone and unit.
Plus false alerts (incidents vision raised where no scripted incident was under way, with
their alert snapshots), coverage of the cells, missed incidents, failsafes and faults, sorties,
and `passed` with the reason for every failed criterion. The map is drawn from the data (no map tiles).
"""
from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.geo import LocalFrame, distance_m
from runloop.eventstore import EventStore

MATCH_RADIUS_M = 60.0  # a detection this close to a scripted incident of the same kind is that incident
CLOSE_M = 20.0
PNG_DPI = 110


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
    by_name = {o.name: o for o in outcomes}
    for ev in store.events("incident_start"):
        if ev.subject in by_name:  # where the world really put it (a stopped car snaps onto a road)
            o = by_name[ev.subject]
            o.started_s = ev.data.get("started_s", ev.t_s)
            o.lat, o.lon = ev.data.get("lat", o.lat), ev.data.get("lon", o.lon)
    for ev in store.events("truth_in_view"):
        o = by_name.get(ev.subject)
        if o and (o.in_view_s is None or ev.t_s < o.in_view_s):  # the first of any drone's cameras
            o.in_view_s = ev.t_s
    # Detections: vision's incident ids, each matched to the nearest scripted incident of its kind
    # within MATCH_RADIUS_M. An incident counts as detected by the first id that places it within
    # CLOSE_M (else the first matched at all); its other ids are duplicates.
    id_to_outcome: dict[str, IncidentOutcome] = {}
    matched: dict[str, list[tuple[float, str, float, dict]]] = {}
    for ev in store.events("detection"):
        d = ev.data
        if ev.subject in id_to_outcome or d.get("lat") is None:
            continue
        best, best_d = None, MATCH_RADIUS_M
        for o in outcomes:
            if o.kind != d.get("kind") or not _had_started(o, ev.t_s):
                continue
            dist = distance_m(o.lat, o.lon, d["lat"], d["lon"])
            if dist <= best_d:
                best, best_d = o, dist
        if best is not None:
            id_to_outcome[ev.subject] = best
            matched.setdefault(best.name, []).append((ev.t_s, ev.subject, best_d, d))
    for o in outcomes:
        found = matched.get(o.name, [])
        if not found:
            continue
        close = [m for m in found if m[2] <= CLOSE_M]
        t_s, iid, dist, d = (close or found)[0]
        o.detected_s, o.incident_id, o.drone_id = t_s, iid, d.get("drone_id")
        o.detected_lat, o.detected_lon, o.geolocation_error_m = d["lat"], d["lon"], dist
        o.duplicate_ids = [m[1] for m in found if m[1] != iid]
    for ev in store.events("incident_status"):  # an alarm a camera confirmed: its alerts are the incident's
        for linked_id in ev.data.get("linked") or ():
            if linked_id in id_to_outcome and ev.subject not in id_to_outcome:
                id_to_outcome[ev.subject] = id_to_outcome[linked_id]
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
        if o is None:
            continue
        action = ev.data.get("action")
        if action == "accept" and o.accepted_s is None:
            o.accepted_s, o.unit_id = ev.t_s, ev.data.get("unit_id")
        elif action == "arrived" and o.arrived_s is None:
            o.arrived_s = ev.t_s
        elif action == "resolved" and o.resolved_s is None:
            o.resolved_s = ev.t_s
    for ev in store.events("incident_status"):
        o = id_to_outcome.get(ev.subject)
        if o and ev.data.get("status") == "arrived" and o.arrived_s is None:
            o.arrived_s = ev.t_s  # the controller saw the unit within its arrive radius
    for ev in store.events("overwatch_start"):
        o = id_to_outcome.get(ev.data.get("incident_id", ""))
        if o and o.overwatch_drone is None:
            o.overwatch_drone = ev.subject
    return outcomes


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


def _alarms_html(report: dict) -> str:
    cols = ["incident_id", "kind", "text", "sent_s", "drone_id", "drone_distance_m", "retask_s", "retask_wall_ms",
            "drone_on_scene_s", "unit_id", "alerted_s", "unit_on_scene_s", "confirmed_by", "patrol_resumed_s"]
    if not report.get("alarms"):
        return ""
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(a.get(c)) if a.get(c) not in (None, []) else '—')}</td>"
                                    for c in cols) + "</tr>" for a in report["alarms"])
    return ("<h2>Alarms</h2><p>Scripted alarms (patrol.alarm/1 over MQTT), scenario seconds; retask_wall_ms "
            "is from sending the alarm to the drone's retask commands acknowledged.</p><table><tr>"
            + "".join(f"<th>{c}</th>" for c in cols) + f"</tr>{rows}</table>")


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


def _false_alerts_html(report: dict) -> str:
    rows = []
    for f in report.get("false_alerts", []):
        img = (f'<img src="{html.escape(f["snapshot"])}" width="240" alt="snapshot">' if f.get("snapshot")
               else "no snapshot")
        units = ", ".join(f"{a['alert_id']} to {a['unit_id']}" for a in f["alerts"]) or "not alerted"
        where = "—" if f.get("lat") is None else f"{f['lat']:.6f}, {f['lon']:.6f}"
        kind = str(f["kind"]) + (f" (closed by the operator as a false alarm at {f['closed_by_operator_s']} s)"
                                 if f.get("closed_by_operator_s") is not None else "")
        rows.append(f"<tr><td>{html.escape(str(f['incident_id']))}</td><td>{html.escape(kind)}</td>"
                    f"<td>{f['t_s']}</td><td>{html.escape(str(f.get('drone_id')))}</td><td>{where}</td>"
                    f"<td>{html.escape(units)}</td><td>{img}</td></tr>")
    if not rows:
        return "<h2>False alerts</h2><p>none</p>"
    return ("<h2>False alerts</h2><p>Incidents vision raised where no scripted incident was under way, and "
            "incidents the operator closed as false alarms.</p>"
            "<table><tr><th>incident</th><th>kind</th><th>t s</th><th>drone</th><th>where</th><th>alerts</th>"
            "<th>snapshot</th></tr>" + "".join(rows) + "</table>")


def _alerts_lost(store: EventStore) -> list[str]:
    issued = {ev.subject: ev.data.get("unit_id") for ev in store.events("alert")}
    issued.update({ev.subject: ev.data.get("unit_id") for ev in store.events("alert_issued")})
    received = {ev.subject for ev in store.events("alert_received")}
    cancelled = {ev.subject for ev in store.events("alert_cancel")}
    # An alert stood down before delivery is not lost; anything else must have reached its unit.
    return sorted(a for a in issued if a not in received and a not in cancelled)


def _sorties(store: EventStore) -> list[dict]:
    out: dict[tuple[str, str], dict] = {}
    for ev in store.events("sortie_start", "sortie_done", "sortie_aborted"):
        key = (ev.subject, ev.data.get("sortie", ""))
        row = out.setdefault(key, {"drone_id": ev.subject, "sortie": key[1], "grid_ids": ev.data.get("grid_ids", []),
                                   "start_s": None, "end_s": None, "outcome": "flying", "detail": ""})
        if ev.kind == "sortie_start":
            row["start_s"] = round(ev.t_s, 1)
        else:
            row["end_s"] = round(ev.t_s, 1)
            row["outcome"] = "completed" if ev.kind == "sortie_done" else "aborted"
            row["detail"] = ev.data.get("detail", "")
    resumed = {(ev.subject, ev.data.get("sortie", "")): ev.data for ev in store.events("sortie_replanned")}
    pooled = {(ev.subject, ev.data.get("sortie", "")) for ev in store.events("cells_returned")}  # a shift's
    for key, row in out.items():
        if row["outcome"] == "aborted" and key in pooled:
            row["outcome"] = "aborted, its cells back in the shift's pool"
        elif row["outcome"] == "aborted" and key in resumed:
            row["outcome"] = ("aborted, remaining cells re-planned" if resumed[key].get("cells")
                              else "aborted, its cells already seen")
    return list(out.values())


FAILSAFE_GROUP_S = 5.0  # failsafe messages this close on one drone are one failsafe (mode change + text)
# A failsafe this long after a scripted fault on its drone (after a link cut ends) is put down to it:
# the vehicle's own timers (FS_GCS_TIMEOUT, BATT_LOW_TIMER) and our hearing of it come well within.
FAULT_CAUSE_WINDOW_S = 120.0


def _failsafe_cause(detail: str, fault: dict | None, link_lost: bool = False) -> str:
    """Why the vehicle took a failsafe, from its own words or, when it could not tell us (its
    STATUSTEXT is lost with the link), from the link being down or the fault scripted on it."""
    d = detail.lower()
    if "battery" in d:
        what = "low battery"
    elif "gcs" in d or "radio" in d:
        what = "GCS link lost"
    elif "fence" in d:
        what = "geofence breach"
    elif "ekf" in d or "gps" in d:
        what = "navigation (EKF/GPS)"
    elif link_lost or (fault is not None and fault["fault"] == "link_cut"):
        what = "GCS link lost"
    elif fault is not None and fault["fault"] == "battery":
        what = "low battery"
    else:
        what = detail or "unknown"
    if fault is not None:
        what += f" (scripted {fault['fault']} fault at {fault['t_s']} s)"
    return what


def _failsafe_summary(vehicle_events: list[tuple], faults: list[dict], sorties: list[dict],
                      replans: list[tuple]) -> list[dict[str, Any]]:
    """One row per failsafe the vehicles took: when, which drone, cause, and what came of it
    (landed back, sortie re-planned or its cells already seen, or still flying at the end)."""
    out: list[dict[str, Any]] = []
    last_at: dict[str, float] = {}
    for t, drone, event, detail in vehicle_events:
        if event != "failsafe":
            continue
        if drone in last_at and t - last_at[drone] <= FAILSAFE_GROUP_S:
            row = out[-1] if out and out[-1]["drone_id"] == drone else next(r for r in reversed(out)
                                                                               if r["drone_id"] == drone)
            row["details"].append(detail)
            if row["cause"].startswith(("unknown", "vehicle switched")):
                row["cause"] = _failsafe_cause(detail, row["_fault"])
            continue
        last_at[drone] = t
        fault = next((f for f in reversed(faults) if f.get("drone_id") == drone
                      and f["t_s"] <= t <= f["t_s"] + float(f.get("seconds", 0.0)) + FAULT_CAUSE_WINDOW_S), None)
        lost = [ev for vt, d, ev, _ in vehicle_events
                if d == drone and vt <= t and ev in ("link_lost", "link_regained")]
        out.append({"t_s": round(t, 1), "drone_id": drone, "_fault": fault, "details": [detail],
                    "cause": _failsafe_cause(detail, fault, link_lost=bool(lost) and lost[-1] == "link_lost")})
    for row in out:
        row.pop("_fault", None)
        t, drone = row["t_s"], row["drone_id"]
        landed = next((vt for vt, d, ev, _ in vehicle_events if d == drone and ev == "landed" and vt >= t), None)
        sortie = next((s for s in sorties if s["drone_id"] == drone and s["end_s"] is not None and s["end_s"] >= t
                       and (s["start_s"] or 0) <= t), None)
        replan = next((data for rt, d, data in replans if d == drone and rt >= t), None)
        parts = [f"returned, landed at {round(landed, 1)} s" if landed is not None else "not landed by the end"]
        if replan is not None:
            parts.append(f"cells re-planned: {', '.join(replan.get('cells', []))} -> "
                         f"{', '.join(replan.get('new_sorties', []))}" if replan.get("cells")
                         else "its cells already seen by others")
        elif sortie is not None and sortie["outcome"] == "completed":
            parts.append("mission resumed and completed")
        row["sortie"] = sortie["sortie"] if sortie else None
        row["outcome"] = "; ".join(parts)
    return out


def build_report(run_dir: Path) -> dict[str, Any]:
    """The report as a dict (also written as report.json by `write_report`)."""
    store = EventStore(run_dir, readonly=True)
    try:
        scenario = store.meta("scenario", {})
        criteria = scenario.get("pass", {})
        outcomes = _match_incidents(store, scenario)
        lost = _alerts_lost(store)
        sorties = _sorties(store)
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
    finally:
        store.close()

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
        bad = [f"{s['drone_id']}/{s['sortie']} ({s['outcome']})" for s in sorties
               if s["outcome"] not in ("completed", "aborted, remaining cells re-planned",
                                       "aborted, its cells already seen", "aborted, its cells back in the shift's pool")]
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
        "failsafe_summary": _failsafe_summary(vehicle_events, faults, sorties, replans),
        "overwatch": overwatch,
        "stage_errors": errors,
        "video": video,  # real video sources (--video): opened, lost, ended
        "shift": shift,  # per cell visits and longest gaps, drones lost (runloop/shift_report.py)
    }


# ------------------------------------------------------------------------------------ labels
@dataclass(frozen=True)
class LabelBox:
    """A label's box in drawing units (pixels, y down) and the point it names."""

    x: float  # left
    y: float  # top
    w: float
    h: float
    anchor: tuple[float, float]

    @property
    def leader(self) -> bool:
        """Drawn away from its point: a leader line joins them."""
        ax, ay = self.anchor
        return not (self.x - 12 <= ax <= self.x + self.w + 12 and self.y - 12 <= ay <= self.y + self.h + 12)

    def overlaps(self, other: "LabelBox", pad: float = 1.0) -> bool:
        return not (self.x + self.w + pad <= other.x or other.x + other.w + pad <= self.x
                    or self.y + self.h + pad <= other.y or other.y + other.h + pad <= self.y)

    def hits_point(self, px: float, py: float, r: float) -> bool:
        cx = min(max(px, self.x), self.x + self.w)
        cy = min(max(py, self.y), self.y + self.h)
        return (cx - px) ** 2 + (cy - py) ** 2 < r * r


def place_labels(anchors: list[tuple[float, float]], sizes: list[tuple[float, float]], *,
                 marker_r: float = 8.0, bounds: tuple[float, float] | None = None) -> list[LabelBox]:
    """Boxes for labels of `sizes` (w, h) next to `anchors`, none overlapping another label or any
    marker (radius `marker_r`). Greedy: each label tries eight spots around its point, then the
    same spots further out (drawn with a leader line), and keeps the first free one.

    >>> boxes = place_labels([(100, 100), (104, 102)], [(80, 14), (80, 14)])
    >>> boxes[0].overlaps(boxes[1])
    False
    """
    placed: list[LabelBox] = []
    gap = marker_r + 2.0
    for (ax, ay), (w, h) in zip(anchors, sizes, strict=True):
        choice = None
        for ring in range(12):
            d = gap + ring * (h + 4.0)
            spots = [(ax + d, ay - d * 0.6 - h), (ax + d, ay + d * 0.6), (ax - d - w, ay - d * 0.6 - h),
                     (ax - d - w, ay + d * 0.6), (ax - w / 2, ay - d - h), (ax - w / 2, ay + d),
                     (ax + d, ay - h / 2), (ax - d - w, ay - h / 2)]
            for x, y in spots:
                box = LabelBox(x, y, w, h, (ax, ay))
                if bounds is not None and (x < 0 or y < 0 or x + w > bounds[0] or y + h > bounds[1]):
                    continue
                if any(box.overlaps(b) for b in placed):
                    continue
                if any(box.hits_point(px, py, marker_r) for px, py in anchors):
                    continue
                choice = box
                break
            if choice is not None:
                break
        if choice is None:  # nowhere free within reach: stack below everything placed so far
            y = max([b.y + b.h for b in placed] + [ay]) + 4.0
            choice = LabelBox(ax + gap, y, w, h, (ax, ay))
        placed.append(choice)
    return placed


def _text_size_px(text: str, font_px: float) -> tuple[float, float]:
    """A bold sans-serif label's box, generously: 0.62 em per character."""
    return 0.62 * font_px * len(text) + 4.0, font_px + 4.0


# ------------------------------------------------------------------------------------ rendering
_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
_KIND_COLOUR = {"fire": "#e4572e", "crowd": "#7b2cbf", "stopped_vehicle": "#1d3557", "intrusion": "#f4a261"}


def _map_svg(run_dir: Path, report: dict, width: int = 900, height: int = 640) -> str:
    store = EventStore(run_dir, readonly=True)
    try:
        cells = store.meta("cells_geo", {})
        docks = store.meta("docks", [])
        poses = store.poses()
        units = store.unit_tracks()
    finally:
        store.close()
    pts: list[tuple[float, float]] = []
    for rings in cells.values():
        for ring in rings:
            pts.extend(ring)
    for track in poses.values():
        pts.extend((p[1], p[2]) for p in track)
    for track in units.values():
        pts.extend((p[1], p[2]) for p in track)
    for inc in report["incidents"]:
        pts.append((inc["lat"], inc["lon"]))
    if not pts:
        return "<p>(nothing to draw)</p>"
    lat0 = sum(p[0] for p in pts) / len(pts)
    lon0 = sum(p[1] for p in pts) / len(pts)
    frame = LocalFrame(lat0, lon0)
    en = [frame.to_en(lat, lon) for lat, lon in pts]
    min_e, max_e = min(e for e, _ in en), max(e for e, _ in en)
    min_n, max_n = min(n for _, n in en), max(n for _, n in en)
    span = max(max_e - min_e, max_n - min_n, 50.0) * 1.08
    scale = min(width, height) / span
    cx, cy = (min_e + max_e) / 2, (min_n + max_n) / 2

    def xy(lat: float, lon: float) -> tuple[float, float]:
        e, n = frame.to_en(lat, lon)
        return width / 2 + (e - cx) * scale, height / 2 - (n - cy) * scale

    def path(points) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(la, lo) for la, lo in points))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" style="background:#f6f4ee;border:1px solid #ccc">']
    seen = report.get("coverage", {}).get("cells", {})
    for gid, rings in cells.items():
        frac = seen.get(gid, {}).get("seen_fraction", 0.0)
        fill = f"rgba(46,139,87,{0.12 + 0.45 * frac:.2f})"
        for ring in rings:
            out.append(f'<polygon points="{path(ring)}" fill="{fill}" stroke="#7a7a7a" stroke-width="0.8">'
                       f'<title>{html.escape(gid)}: {100 * frac:.0f} % seen</title></polygon>')
    for i, (drone, track) in enumerate(sorted(poses.items())):
        c = _COLOURS[i % len(_COLOURS)]
        airborne = [(p[1], p[2]) for p in track if p[3] is not None and p[3] > 2.0]
        if len(airborne) > 1:
            out.append(f'<polyline points="{path(airborne)}" fill="none" stroke="{c}" stroke-width="1.6" '
                       f'stroke-opacity="0.85"><title>{html.escape(drone)} route flown</title></polyline>')
    for unit, track in sorted(units.items()):
        if len(track) > 1:
            out.append(f'<polyline points="{path([(p[1], p[2]) for p in track])}" fill="none" stroke="#444" '
                       f'stroke-width="1.2" stroke-dasharray="4 3"><title>unit {html.escape(unit)}</title></polyline>')
        x, y = xy(track[-1][1], track[-1][2])
        out.append(f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="#444"/>')
    for d in docks:
        x, y = xy(d["lat"], d["lon"])
        out.append(f'<polygon points="{x:.1f},{y - 8:.1f} {x + 7:.1f},{y + 6:.1f} {x - 7:.1f},{y + 6:.1f}" '
                   f'fill="#111"><title>dock {html.escape(d["grid_id"])}</title></polygon>')
    # Incident names and unit ids are placed together: a unit ends its track at the incident it
    # rode to, so its label would otherwise sit on the incident's.
    font_px = 12
    unit_ends = [(unit, xy(track[-1][1], track[-1][2])) for unit, track in sorted(units.items())]
    anchors = [xy(inc["lat"], inc["lon"]) for inc in report["incidents"]]
    labels = ([(inc["name"], "incident-label", "bold") for inc in report["incidents"]]
              + [(unit, "unit-label", "normal") for unit, _ in unit_ends])
    boxes = place_labels(anchors + [p for _, p in unit_ends], [_text_size_px(t, font_px) for t, _, _ in labels],
                         bounds=(width, height))
    for inc, (x, y) in zip(report["incidents"], anchors):
        c = _KIND_COLOUR.get(inc["kind"], "#000")
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="7" fill="{c}" stroke="#000"><title>{html.escape(inc["name"])}'
                   f' (true position)</title></circle>')
        if inc.get("detected_lat") is not None:
            dx, dy = xy(inc["detected_lat"], inc["detected_lon"])
            out.append(f'<path d="M{dx - 5:.1f},{dy - 5:.1f} L{dx + 5:.1f},{dy + 5:.1f} M{dx - 5:.1f},{dy + 5:.1f} '
                       f'L{dx + 5:.1f},{dy - 5:.1f}" stroke="#000" stroke-width="2"><title>detected position, '
                       f'error {inc.get("geolocation_error_m")} m</title></path>')
    for (text, cls, weight), box in zip(labels, boxes):  # labels last: on top of every marker
        if box.leader:
            lx = min(max(box.anchor[0], box.x), box.x + box.w)
            ly = min(max(box.anchor[1], box.y), box.y + box.h)
            out.append(f'<line x1="{box.anchor[0]:.1f}" y1="{box.anchor[1]:.1f}" x2="{lx:.1f}" y2="{ly:.1f}" '
                       f'stroke="#333" stroke-width="0.8"/>')
        out.append(f'<text class="{cls}" x="{box.x + 2:.1f}" y="{box.y + box.h - 4:.1f}" font-size="{font_px}" '
                   f'font-weight="{weight}" data-box="{box.x:.1f} {box.y:.1f} {box.w:.1f} {box.h:.1f}">'
                   f'{html.escape(text)}</text>')
    bar_m = 10 ** math.floor(math.log10(span / 4))
    out.append(f'<line x1="20" y1="{height - 20}" x2="{20 + bar_m * scale:.1f}" y2="{height - 20}" stroke="#000" '
               f'stroke-width="3"/><text x="20" y="{height - 26}" font-size="11">{bar_m:g} m</text>')
    out.append(f'<text x="{width - 20}" y="24" font-size="14" text-anchor="end">N ↑</text></svg>')
    return "\n".join(out)


def _timeline_svg(report: dict, width: int = 900) -> str:
    rows: list[tuple[str, list[tuple[float, float, str, str]], list[tuple[float, str, str]]]] = []
    end = report.get("run", {}).get("ended_s") or 1.0
    for s in report["sorties"]:
        label = f"{s['drone_id']} {s['sortie']}"
        colour = "#2e8b57" if s["outcome"] == "completed" else "#c0392b" if s["outcome"] == "aborted" else "#888"
        rows.append((label, [(s["start_s"] or 0.0, s["end_s"] or end, colour, s["outcome"])], []))
    marks = [("started_s", "start", "#999"), ("in_view_s", "in view", "#f1c40f"), ("detected_s", "detected", "#e67e22"),
             ("alerted_s", "alerted", "#c0392b"), ("accepted_s", "accepted", "#2980b9"),
             ("arrived_s", "arrived", "#27ae60"), ("resolved_s", "resolved", "#2c3e50")]
    for inc in report["incidents"]:
        pts = [(inc[k], name, c) for k, name, c in marks if inc.get(k) is not None]
        rows.append((inc["name"], [], pts))
    for f in report["faults"]:
        rows.append((f"fault {f['fault']}", [], [(f["t_s"], f["fault"], "#000")]))
    for f in report.get("faults_refused", []):
        what = f"{f['fault']} refused: {f.get('reason')}"
        rows.append((f"NOT injected: {f['fault']}", [], [(f["t_s"], what, "#bbb")]))
    for f in report.get("failsafe_summary", []):
        rows.append((f"failsafe {f['drone_id']}", [], [(f["t_s"], f"{f['cause']} -> {f['outcome']}", "#c0392b")]))
    end = max([end] + [p[0] for _, _, ps in rows for p in ps] + [b[1] for _, bs, _ in rows for b in bs])
    left, row_h = 170, 22
    height = 40 + row_h * len(rows)
    x_of = lambda t: left + (width - left - 20) * (t / end if end else 0)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" style="background:#fff">']
    for i in range(0, 11):
        t = end * i / 10
        out.append(f'<line x1="{x_of(t):.1f}" y1="20" x2="{x_of(t):.1f}" y2="{height - 10}" stroke="#eee"/>'
                   f'<text x="{x_of(t):.1f}" y="14" font-size="10" text-anchor="middle">{t:.0f} s</text>')
    for r, (label, bars, pts) in enumerate(rows):
        y = 30 + r * row_h
        out.append(f'<text x="4" y="{y + 12}" font-size="11">{html.escape(label)}</text>')
        for a, b, c, what in bars:
            out.append(f'<rect x="{x_of(a):.1f}" y="{y + 2}" width="{max(1.0, x_of(b) - x_of(a)):.1f}" height="14" '
                       f'fill="{c}" fill-opacity="0.7"><title>{html.escape(what)} {a:.0f}-{b:.0f} s</title></rect>')
        for t, name, c in pts:
            out.append(f'<circle cx="{x_of(t):.1f}" cy="{y + 9}" r="5" fill="{c}"><title>{html.escape(name)} at '
                       f'{t:.1f} s</title></circle>')
    out.append("</svg>")
    legend = " ".join(f'<span style="color:{c}">●</span> {n}' for _, n, c in marks)
    return "\n".join(out) + f"<p style='font-size:12px'>{legend}</p>"


def _html(run_dir: Path, report: dict) -> str:
    from runloop.shift_report import shift_html

    verdict = "PASSED" if report["passed"] else "FAILED"
    colour = "#1e8449" if report["passed"] else "#c0392b"
    cols = ["name", "kind", "started_s", "in_view_s", "detected_s", "geolocation_error_m", "drone_id",
            "overwatch_drone", "alerted_s", "alert_latency_s", "unit_id", "accepted_s", "arrived_s", "resolved_s"]
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(i.get(c) if i.get(c) is not None else '—'))}</td>"
                                    for c in cols) + "</tr>" for i in report["incidents"])
    cov = report.get("coverage", {})
    fails = "".join(f"<li>{html.escape(f)}</li>" for f in report["failures"]) or "<li>none</li>"
    sorties = "".join(f"<tr><td>{html.escape(s['drone_id'])}</td><td>{html.escape(s['sortie'])}</td>"
                      f"<td>{s['start_s']}</td><td>{s['end_s']}</td><td>{html.escape(s['outcome'])}</td>"
                      f"<td>{html.escape(str(s['detail']))}</td></tr>" for s in report["sorties"])
    safes = "".join(f"<li>{f['t_s']} s {html.escape(f['drone_id'])}: {html.escape(str(f.get('event')))} "
                    f"{html.escape(str(f.get('detail', '')))}</li>" for f in report["failsafes"]) or "<li>none</li>"
    fs_rows = "".join(f"<tr><td>{f['t_s']}</td><td>{html.escape(f['drone_id'])}</td><td>{html.escape(f['cause'])}"
                      f"</td><td>{html.escape(f['outcome'])}</td></tr>" for f in report.get("failsafe_summary", []))
    faults = "".join(f"<li>{f['t_s']} s {html.escape(f['fault'])}: "
                     f"{html.escape(json.dumps({k: v for k, v in f.items() if k not in ('t_s', 'fault')}))}</li>"
                     for f in report["faults"])
    faults += "".join(f"<li><b>not injected</b>: {f['t_s']} s {html.escape(f['fault'])} on drone {f.get('drone')}: "
                      f"{html.escape(str(f.get('reason')))}</li>" for f in report.get("faults_refused", []))
    faults = faults or "<li>none</li>"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Patrol report {html.escape(str(report['scenario']))}</title>
<style>body{{font-family:sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:3px 6px}} th{{background:#eee}}</style></head><body>
<h1>After-action report: {html.escape(str(report['scenario']))} — <span style="color:{colour}">{verdict}</span></h1>
<p>Run: {html.escape(json.dumps(report.get('run', {})))}</p>
<h2>Criteria not met</h2><ul>{fails}</ul>
<h2>Map</h2><p>Cells shaded by the share seen; coloured lines are routes flown, dashed lines unit tracks,
dots true incident positions, crosses where vision placed them, triangles docks.</p>
{_map_svg(run_dir, report)}
<h2>Incidents</h2><table><tr>{head}</tr>{body}</table>
<p>Missed: {html.escape(', '.join(report['missed_incidents']) or 'none')}. Alerts lost:
{html.escape(', '.join(report['alerts_lost']) or 'none')}. False alerts: {len(report['false_alerts'])}.</p>
{_false_alerts_html(report)}
{_alarms_html(report)}
<h2>Timeline (scenario seconds)</h2>{_timeline_svg(report)}
<h2>Coverage</h2><p>{cov.get('coverage_pct', 0):.1f} % of the {len(cov.get('cells', {}))} cells' flyable area seen
(cells fully seen: {cov.get('cells_seen', 0)}).</p>
<h2>Sorties</h2><table><tr><th>drone</th><th>sortie</th><th>start s</th><th>end s</th><th>outcome</th><th>detail</th></tr>{sorties}</table>
<h2>Failsafes</h2><table><tr><th>t s</th><th>drone</th><th>cause</th><th>outcome</th></tr>{fs_rows}</table>
{shift_html(report.get("shift"))}
<h2>Faults injected</h2><ul>{faults}</ul>
<h2>Vehicle failsafe and link events</h2><ul>{safes}</ul>
</body></html>"""


def _png(run_dir: Path, report: dict, path: Path) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    store = EventStore(run_dir, readonly=True)
    try:
        cells = store.meta("cells_geo", {})
        poses = store.poses()
        units = store.unit_tracks()
    finally:
        store.close()
    fig, ax = plt.subplots(figsize=(8, 7))
    for rings in cells.values():
        for ring in rings:
            ax.fill([p[1] for p in ring], [p[0] for p in ring], facecolor="#cfe8d6", edgecolor="#777", lw=0.6)
    for i, (drone, track) in enumerate(sorted(poses.items())):
        air = [p for p in track if p[3] is not None and p[3] > 2]
        ax.plot([p[2] for p in air], [p[1] for p in air], color=_COLOURS[i % len(_COLOURS)], lw=1.2, label=drone)
    for unit, track in units.items():
        ax.plot([p[2] for p in track], [p[1] for p in track], color="#444", lw=0.8, ls="--")
    for inc in report["incidents"]:
        ax.scatter([inc["lon"]], [inc["lat"]], s=90, color=_KIND_COLOUR.get(inc["kind"], "k"), edgecolor="k", zorder=5)
    lats = [i["lat"] for i in report["incidents"]]
    ax.set_aspect(1 / math.cos(math.radians(sum(lats) / len(lats) if lats else 32.0)))
    labels = _png_labels(fig, ax, report["incidents"])
    ax.set_title(f"{report['scenario']}: {'PASSED' if report['passed'] else 'FAILED'}")
    if poses:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # outside: never over a label
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    drawn = []
    for inc, a in zip(report["incidents"], labels):
        e = a.get_window_extent(renderer)
        drawn.append(PngLabel(a.get_text(), (e.x0, e.y0, e.width, e.height),
                              tuple(float(v) for v in ax.transData.transform((inc["lon"], inc["lat"])))))
    fig.savefig(path, dpi=PNG_DPI, bbox_inches="tight")
    plt.close(fig)
    return drawn


@dataclass(frozen=True)
class PngLabel:
    """An incident name as drawn on report.png: its box and its point, in figure pixels (y up)."""

    text: str
    box: tuple[float, float, float, float]  # x0, y0, width, height
    point: tuple[float, float]


def _png_labels(fig, ax, incidents: list[dict]) -> list:
    """Incident names placed by `place_labels` in screen pixels (leader lines where moved off
    their point); returns the annotations so callers can measure what was drawn."""
    if not incidents:
        return []
    fig.set_dpi(PNG_DPI)
    ax.autoscale_view()
    fig.canvas.draw()  # fixes limits and aspect so data -> pixel is final
    renderer = fig.canvas.get_renderer()
    font_pt = 9.0
    anchors_disp = [tuple(ax.transData.transform((i["lon"], i["lat"]))) for i in incidents]
    height = fig.bbox.height
    anchors = [(x, height - y) for x, y in anchors_disp]  # y down, as place_labels expects
    sizes = []
    for inc in incidents:
        t = ax.text(0, 0, inc["name"], fontsize=font_pt)
        bb = t.get_window_extent(renderer)
        sizes.append((bb.width + 4.0, bb.height + 4.0))
        t.remove()
    marker_r = math.sqrt(90) / 2 * PNG_DPI / 72.0 + 1.0  # scatter s=90 is points^2
    boxes = place_labels(anchors, sizes, marker_r=marker_r)
    out = []
    for inc, box, (ax_x, ax_y) in zip(incidents, boxes, anchors_disp):
        # the box's lower-left corner in display pixels, as an offset from the point
        dx, dy = box.x + 2.0 - ax_x, (height - (box.y + box.h)) + 2.0 - ax_y
        arrow = {"arrowstyle": "-", "color": "#333", "lw": 0.7, "shrinkA": 0, "shrinkB": 0} if box.leader else None
        out.append(ax.annotate(inc["name"], (inc["lon"], inc["lat"]), xytext=(dx * 72.0 / PNG_DPI, dy * 72.0 / PNG_DPI),
                               textcoords="offset points", fontsize=font_pt, ha="left", va="bottom",
                               arrowprops=arrow, zorder=6))
    return out


def write_report(run_dir: Path) -> dict[str, Any]:
    """Build and write report.json, report.html and report.png; returns the report."""
    run_dir = Path(run_dir)
    report = build_report(run_dir)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (run_dir / "report.html").write_text(_html(run_dir, report))
    try:
        _png(run_dir, report, run_dir / "report.png")
    except Exception as exc:  # the PNG is a convenience; the JSON and HTML are the record
        report.setdefault("notes", []).append(f"report.png not drawn: {exc}")
    if report.get("shift"):
        from runloop.shift_report import coverage_png

        try:
            coverage_png(report["shift"], run_dir / "coverage.png")
        except Exception as exc:
            report.setdefault("notes", []).append(f"coverage.png not drawn: {exc}")
    return report
