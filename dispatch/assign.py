"""Choosing a unit for an incident: best ETA, penalised by the unit's load.

The ETA model is pluggable (`EtaModel`): straight-line distance at a typical speed by default; a
road-network model only has to implement `eta_s`. Incident priority is applied by the controller,
which offers units to waiting incidents most urgent first (`INCIDENT_PRIORITY`, then age).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol

from common.geo import bearing_deg, distance_m
from common.values import INCIDENT_PRIORITY, Incident
from dispatch.registry import RiderUnit


class EtaModel(Protocol):
    def eta_s(self, from_lat: float, from_lon: float, to_lat: float, to_lon: float) -> float: ...


@dataclass(frozen=True, slots=True)
class StraightLineEta:
    """Great-circle distance at a typical urban motorcycle speed."""

    speed_m_s: float = 8.0

    def eta_s(self, from_lat: float, from_lon: float, to_lat: float, to_lon: float) -> float:
        return distance_m(from_lat, from_lon, to_lat, to_lon) / self.speed_m_s


@dataclass(frozen=True, slots=True)
class Candidate:
    unit: RiderUnit
    distance_m: float
    bearing_deg: float
    eta_s: float
    score_s: float  # eta plus load penalty; lower is better


def rank_units(incident: Incident, units: Iterable[RiderUnit], eta: EtaModel,
               load_penalty_s: float = 600.0, exclude: Iterable[str] = ()) -> list[Candidate]:
    """Units best first for this incident; `exclude` holds ids already tried (declined, timed out)."""
    if incident.lat is None or incident.lon is None:
        return []
    skip = set(exclude)
    out = []
    for unit in units:
        if unit.unit_id in skip:
            continue
        eta_s = eta.eta_s(unit.lat, unit.lon, incident.lat, incident.lon)
        out.append(Candidate(unit, distance_m(unit.lat, unit.lon, incident.lat, incident.lon),
                             bearing_deg(unit.lat, unit.lon, incident.lat, incident.lon),
                             eta_s, eta_s + load_penalty_s * unit.load))
    out.sort(key=lambda c: (c.score_s, c.unit.unit_id))
    return out


def priority_of(incident: Incident) -> int:
    return INCIDENT_PRIORITY.get(incident.kind, 9)
