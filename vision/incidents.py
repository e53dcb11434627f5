"""Incident lifecycle: stable ids, new/update/end, de-duplication by kind and place, cooldown.

A sighting joins an incident when it comes from the same detector object (same key) or, with a
position, when it is the same kind within `dedup_radius_m[kind]`. The registry can be shared by
several pipelines, so the same fire seen by two drones, or on two passes, is one incident.
An incident ends after `end_after_s` unseen; seen again at the same place within `cooldown_s`
it is re-opened with an UPDATE, not a second NEW alert.
"""
from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass, field

from common.geo import distance_m
from common.values import Incident, IncidentEvent, IncidentKind, IncidentState

from .config import IncidentConfig


@dataclass
class IncidentRecord:
    id: str
    kind: IncidentKind
    first_seen_s: float
    last_seen_s: float
    drone_id: str
    confidence: float = 0.0
    lat: float | None = None
    lon: float | None = None
    error_m: float | None = None
    grid_id: str | None = None
    bbox_px: tuple[int, int, int, int] | None = None
    snapshot_jpeg: bytes | None = None
    snapshot_confidence: float = -1.0
    snapshot_t: float = -math.inf
    keys: set[str] = field(default_factory=set)
    ended: bool = False
    ended_s: float = 0.0
    last_emit_s: float = -math.inf
    emitted_confidence: float = 0.0
    _fixes: list[tuple[float, float]] = field(default_factory=list)

    def to_incident(self) -> Incident:
        return Incident(id=self.id, kind=self.kind, confidence=round(self.confidence, 3), first_seen_s=self.first_seen_s,
                        last_seen_s=self.last_seen_s, lat=self.lat, lon=self.lon,
                        error_m=None if self.error_m is None else round(self.error_m, 1), drone_id=self.drone_id,
                        grid_id=self.grid_id, bbox_px=self.bbox_px, snapshot_jpeg=self.snapshot_jpeg)


@dataclass(slots=True)
class Observation:
    kind: IncidentKind
    key: str
    t_s: float
    confidence: float
    drone_id: str
    lat: float | None = None
    lon: float | None = None
    error_m: float | None = None
    bbox_px: tuple[int, int, int, int] | None = None


class IncidentRegistry:
    """Thread-safe store of incidents; share one between pipelines to de-duplicate across drones."""

    def __init__(self, cfg: IncidentConfig | None = None, id_prefix: str = "inc") -> None:
        self.cfg = cfg or IncidentConfig()
        self.records: list[IncidentRecord] = []
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self.id_prefix = id_prefix

    def _match(self, obs: Observation) -> IncidentRecord | None:
        full_key = f"{obs.drone_id}/{obs.key}"
        for rec in self.records:
            if full_key in rec.keys and rec.kind == obs.kind and not (rec.ended and obs.t_s - rec.ended_s > self.cfg.cooldown_s):
                return rec
        if obs.lat is None:
            return None
        radius = self.cfg.dedup_radius_m.get(obs.kind.value, 15.0)
        best, best_d = None, math.inf
        for rec in self.records:
            if rec.kind != obs.kind or rec.lat is None:
                continue
            if rec.ended and obs.t_s - rec.ended_s > self.cfg.cooldown_s:
                continue
            d = distance_m(rec.lat, rec.lon, obs.lat, obs.lon)
            if d <= radius and d < best_d:
                best, best_d = rec, d
        return best

    def observe(self, obs: Observation, grid_lookup=None) -> tuple[IncidentRecord, IncidentState | None]:
        """Fold one observation in; returns the record and the state to announce (or None)."""
        with self._lock:
            rec = self._match(obs)
            state: IncidentState | None = None
            if rec is None:
                rec = IncidentRecord(id=f"{self.id_prefix}-{obs.kind.value}-{next(self._counter):04d}", kind=obs.kind,
                                     first_seen_s=obs.t_s, last_seen_s=obs.t_s, drone_id=obs.drone_id)
                self.records.append(rec)
                state = IncidentState.NEW
            elif rec.ended:
                rec.ended = False
                state = IncidentState.UPDATE
            rec.keys.add(f"{obs.drone_id}/{obs.key}")
            rec.last_seen_s = max(rec.last_seen_s, obs.t_s)
            rec.drone_id = obs.drone_id
            rec.confidence = max(rec.confidence * 0.98, obs.confidence)
            rec.bbox_px = obs.bbox_px
            if obs.lat is not None:
                # Average the recent fixes: shake and attitude noise average out over a pass.
                rec._fixes.append((obs.lat, obs.lon))
                del rec._fixes[:-30]
                rec.lat = sum(f[0] for f in rec._fixes) / len(rec._fixes)
                rec.lon = sum(f[1] for f in rec._fixes) / len(rec._fixes)
                # GPS bias does not average out, so the radius is the best single fix's, not less.
                if obs.error_m is not None:
                    rec.error_m = obs.error_m if rec.error_m is None else min(rec.error_m, obs.error_m)
                if grid_lookup is not None:
                    rec.grid_id = grid_lookup(rec.lat, rec.lon)
            if state is None and (obs.t_s - rec.last_emit_s >= self.cfg.update_every_s
                                  or rec.confidence - rec.emitted_confidence >= 0.1):
                state = IncidentState.UPDATE
            return rec, state

    def mark_emitted(self, rec: IncidentRecord, t_s: float) -> None:
        rec.last_emit_s = t_s
        rec.emitted_confidence = rec.confidence

    def expire(self, t_s: float, drone_id: str | None = None) -> list[IncidentRecord]:
        """Records unseen for end_after_s (last seen by drone_id, if given) are ended and returned."""
        out = []
        with self._lock:
            for rec in self.records:
                if rec.ended or (drone_id is not None and rec.drone_id != drone_id):
                    continue
                if t_s - rec.last_seen_s >= self.cfg.end_after_s:
                    rec.ended, rec.ended_s = True, t_s
                    out.append(rec)
            # Forget what is past its cooldown.
            self.records = [r for r in self.records if not (r.ended and t_s - r.ended_s > self.cfg.cooldown_s)]
        return out

    def end_all(self, t_s: float, drone_id: str | None = None) -> list[IncidentRecord]:
        with self._lock:
            out = [r for r in self.records if not r.ended and (drone_id is None or r.drone_id == drone_id)]
            for r in out:
                r.ended, r.ended_s = True, t_s
        return out


def event(rec: IncidentRecord, state: IncidentState) -> IncidentEvent:
    return IncidentEvent(state=state, incident=rec.to_incident())
