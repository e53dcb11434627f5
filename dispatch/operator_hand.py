"""The operator's hand: close an incident as a false alarm, or send a chosen unit to it.

A part of `Dispatcher` (dispatch/controller.py); runloop/operator.py takes the commands.
"""
from __future__ import annotations

from dispatch.assign import rank_units
from dispatch.cases import Case
from dispatch.errors import PayloadError
from dispatch.schemas import UNIT_HOLDS, DispatchStatus


class OperatorHand:
    """What the operator may decide over the controller (a mixin of `Dispatcher`)."""

    def close_false_alarm(self, incident_id: str, now: float | None = None) -> str:
        """The operator closes an open incident as a false alarm: its unit is stood down (an
        alert-cancel on its alerts topic), its drone released. Returns what was done; PayloadError
        naming why when there is no such open incident."""
        case = self._open_case(incident_id)
        unit = case.unit_id
        self._close(case, DispatchStatus.FALSE_ALARM, self.clock() if now is None else now, case.record(),
                    reason="closed by the operator as a false alarm")
        return f"{incident_id} closed as a false alarm" + (f"; {unit} stood down" if unit else "")

    def assign_unit(self, incident_id: str, unit_id: str, now: float | None = None) -> str:
        """The operator sends this unit to this incident: a unit alerted for it before is stood
        down, the chosen one alerted (busy units too: the operator decides). PayloadError naming
        why when the incident is not open or the unit cannot take an alert."""
        now = self.clock() if now is None else now
        case = self._open_case(incident_id)
        unit = self.registry.get(unit_id)
        if unit is None:
            known = ", ".join(sorted(u.unit_id for u in self.registry.all())) or "none"
            raise PayloadError(f"no unit {unit_id!r} (units known: {known})")
        if not unit.online:
            raise PayloadError(f"unit {unit_id} is signed off")
        if not case.located:
            raise PayloadError(f"incident {incident_id} has no position yet")
        if case.unit_id == unit_id and case.status in UNIT_HOLDS:
            raise PayloadError(f"unit {unit_id} already has {incident_id} ({case.status})")
        (best,) = rank_units(case.incident, [unit], self.eta, self.config.load_penalty_s)
        if case.alert_id and case.unit_id:
            with self.journal.transaction():
                self._cancel_alert(case.alert_id, case.unit_id, case.incident.id, "reassigned by the operator", now)
            self._forget_alert(case.alert_id)
            self.registry.release(case.unit_id, case.incident.id)
        case.declined_by.discard(unit_id)
        case.timed_out.discard(unit_id)
        self._issue_alert(case, best, now)
        return f"{unit_id} alerted for {incident_id} ({best.distance_m:.0f} m, ETA {best.eta_s:.0f} s)"

    def _open_case(self, incident_id: str) -> Case:
        case = self.cases.get(incident_id)
        if case is not None and not case.closed:
            return case
        if self.journal.incident_exists(incident_id) or self.journal.linked_incident(incident_id):
            raise PayloadError(f"incident {incident_id} is already closed")
        raise PayloadError(f"no incident {incident_id!r}")
