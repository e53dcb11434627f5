"""What each flight came to, for the report: sorties with a typed outcome, and one row per
failsafe the vehicles took with its cause and what came of it."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from runloop.eventstore import EventStore


class SortieOutcome(StrEnum):
    """How a sortie ended. The values are what report.json and report.html show."""

    FLYING = "flying"  # no end recorded by the end of the run
    COMPLETED = "completed"
    ABORTED = "aborted"  # and nothing took over its cells
    ABORTED_POOLED = "aborted, its cells back in the shift's pool"
    ABORTED_REPLANNED = "aborted, remaining cells re-planned"
    ABORTED_ALREADY_SEEN = "aborted, its cells already seen"

    @property
    def done_with(self) -> bool:
        """Its cells were flown, or are seen to by others: what `sorties_completed` asks for."""
        return self is not SortieOutcome.FLYING and self is not SortieOutcome.ABORTED


def sorties(store: EventStore) -> list[dict]:
    out: dict[tuple[str, str], dict] = {}
    for ev in store.events("sortie_start", "sortie_done", "sortie_aborted"):
        key = (ev.subject, ev.data.get("sortie", ""))
        row = out.setdefault(key, {"drone_id": ev.subject, "sortie": key[1], "grid_ids": ev.data.get("grid_ids", []),
                                   "start_s": None, "end_s": None, "outcome": SortieOutcome.FLYING, "detail": ""})
        if ev.kind == "sortie_start":
            row["start_s"] = round(ev.t_s, 1)
        else:
            row["end_s"] = round(ev.t_s, 1)
            row["outcome"] = SortieOutcome.COMPLETED if ev.kind == "sortie_done" else SortieOutcome.ABORTED
            row["detail"] = ev.data.get("detail", "")
    resumed = {(ev.subject, ev.data.get("sortie", "")): ev.data for ev in store.events("sortie_replanned")}
    pooled = {(ev.subject, ev.data.get("sortie", "")) for ev in store.events("cells_returned")}  # a shift's
    for key, row in out.items():
        if row["outcome"] is SortieOutcome.ABORTED and key in pooled:
            row["outcome"] = SortieOutcome.ABORTED_POOLED
        elif row["outcome"] is SortieOutcome.ABORTED and key in resumed:
            row["outcome"] = (SortieOutcome.ABORTED_REPLANNED if resumed[key].get("cells")
                              else SortieOutcome.ABORTED_ALREADY_SEEN)
    return list(out.values())


# ------------------------------------------------------------------------------ failsafes
FAILSAFE_GROUP_S = 5.0  # failsafe messages this close on one drone are one failsafe (mode change + text)
# A failsafe this long after a scripted fault on its drone (after a link cut ends) is put down to it:
# the vehicle's own timers (FS_GCS_TIMEOUT, BATT_LOW_TIMER) and our hearing of it come well within.
FAULT_CAUSE_WINDOW_S = 120.0


class FailsafeCause(StrEnum):
    LOW_BATTERY = "low battery"
    GCS_LINK = "GCS link lost"
    GEOFENCE = "geofence breach"
    NAVIGATION = "navigation (EKF/GPS)"


# Why the vehicle says it took a failsafe. MAVLink carries no failsafe reason: ArduPilot says it
# only in a STATUSTEXT ("Battery Failsafe", "GCS Failsafe", ...) and the mode it switched to, so
# its words are the one record of its own reason; they are read here and nowhere else. The
# structured data (link_lost / link_regained events, the scripted faults) decide when the
# vehicle's words name no cause, e.g. when its STATUSTEXT was lost with the link.
_CAUSE_WORDS = ((("battery",), FailsafeCause.LOW_BATTERY), (("gcs", "radio"), FailsafeCause.GCS_LINK),
                (("fence",), FailsafeCause.GEOFENCE), (("ekf", "gps"), FailsafeCause.NAVIGATION))
_FAULT_CAUSE = {"link_cut": FailsafeCause.GCS_LINK, "battery": FailsafeCause.LOW_BATTERY}


def _cause_in_words(detail: str) -> FailsafeCause | None:
    """
    >>> _cause_in_words("Battery Failsafe"), _cause_in_words("vehicle switched itself to RTL")
    (<FailsafeCause.LOW_BATTERY: 'low battery'>, None)
    """
    low = detail.lower()
    return next((cause for words, cause in _CAUSE_WORDS if any(w in low for w in words)), None)


@dataclass
class _Failsafe:
    t_s: float
    drone_id: str
    fault: dict | None  # the scripted fault behind it, if any
    details: list[str]
    cause: FailsafeCause | None
    said: str  # the vehicle's latest words judged for a cause, shown when none was found

    def describe(self) -> str:
        """The cause as report.json shows it."""
        what = str(self.cause) if self.cause is not None else (self.said or "unknown")
        if self.fault is not None:
            what += f" (scripted {self.fault['fault']} fault at {self.fault['t_s']} s)"
        return what


def _cause(detail: str, fault: dict | None, link_lost: bool) -> FailsafeCause | None:
    """From the vehicle's own words or, when they name no cause, from the link being down or the
    fault scripted on it."""
    if (said := _cause_in_words(detail)) is not None:
        return said
    if link_lost:
        return FailsafeCause.GCS_LINK
    return _FAULT_CAUSE.get(fault["fault"]) if fault is not None else None


def _failsafes(vehicle_events: list[tuple], faults: list[dict]) -> list[_Failsafe]:
    out: list[_Failsafe] = []
    for t, drone, event, detail in vehicle_events:
        if event != "failsafe":
            continue
        earlier = next((f for f in reversed(out) if f.drone_id == drone), None)
        if earlier is not None and t - earlier.t_s <= FAILSAFE_GROUP_S:
            earlier.details.append(detail)
            if earlier.cause is None:  # the mode change came first; the text names the cause
                earlier.cause, earlier.said = _cause(detail, earlier.fault, link_lost=False), detail
            continue
        fault = next((f for f in reversed(faults) if f.get("drone_id") == drone
                      and f["t_s"] <= t <= f["t_s"] + float(f.get("seconds", 0.0)) + FAULT_CAUSE_WINDOW_S), None)
        link = [ev for vt, d, ev, _ in vehicle_events if d == drone and vt <= t and ev in ("link_lost", "link_regained")]
        lost = bool(link) and link[-1] == "link_lost"
        out.append(_Failsafe(t, drone, fault, [detail], _cause(detail, fault, lost), detail))
    return out


def failsafe_summary(vehicle_events: list[tuple], faults: list[dict], flown: list[dict],
                     replans: list[tuple]) -> list[dict[str, Any]]:
    """One row per failsafe the vehicles took: when, which drone, cause, and what came of it
    (landed back, sortie re-planned or its cells already seen, or still flying at the end)."""
    rows = []
    for fs in _failsafes(vehicle_events, faults):
        t, drone = round(fs.t_s, 1), fs.drone_id
        landed = next((vt for vt, d, ev, _ in vehicle_events if d == drone and ev == "landed" and vt >= t), None)
        sortie = next((s for s in flown if s["drone_id"] == drone and s["end_s"] is not None and s["end_s"] >= t
                       and (s["start_s"] or 0) <= t), None)
        replan = next((data for rt, d, data in replans if d == drone and rt >= t), None)
        parts = [f"returned, landed at {round(landed, 1)} s" if landed is not None else "not landed by the end"]
        if replan is not None:
            parts.append(f"cells re-planned: {', '.join(replan.get('cells', []))} -> "
                         f"{', '.join(replan.get('new_sorties', []))}" if replan.get("cells")
                         else "its cells already seen by others")
        elif sortie is not None and sortie["outcome"] == SortieOutcome.COMPLETED:
            parts.append("mission resumed and completed")
        rows.append({"t_s": t, "drone_id": drone, "details": fs.details, "cause": fs.describe(),
                     "sortie": sortie["sortie"] if sortie else None, "outcome": "; ".join(parts)})
    return rows
