"""The live schedule of a patrol shift: which sortie a drone back on its dock flies next.

After the first cycle (the plan from `plan_patrol`), every drone that is on its dock with a
charged pack is given the sortie built from the cell parts with the greatest weighted
staleness it can reach within one battery:

    urgency = weight x (now - last seen) / revisit target

`weight` is per cell (`ShiftWeights.cells`), else per grid kind (special cells weigh more),
times `incident_boost` for cells within `incident_radius_m` of an incident reported in the
last `incident_boost_s`. Cells never seen count from the start of the shift.

The sortie is built with the planner's own pieces: the plan's work units (so big cells keep
their battery-sized parts), its transit graph round no-fly zones (`build_route`), and
`build_mission` on the drone's own transit layer, from the drone's dock. The choice is a pure
function of its inputs (plan, drone, time, what was seen when, what others are flying), so it
is tested and benched without a run:

    chooser = SortieChooser(plan)                              # once per shift (units, distances)
    s = chooser.next_sortie("drone02", now_s=1800.0, last_seen_s={"DY-C0713": 1320.0, ...},
                            claimed={"DY-C0534"}, hot_spots=[(x_m, y_m, t_s)])
    s.grid_ids, s.duration_s, s.mission                        # a planner Sortie, or None
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Collection, Mapping

import numpy as np

from .planner import PatrolPlan, Sortie
from .routing import two_opt
from .sorties import build_route, layer_change_s
from .missions import build_mission


@dataclass(frozen=True)
class ShiftWeights:
    """How much a stale cell matters: per grid kind, per cell, and near recent incidents."""

    kinds: Mapping[str, float] = field(default_factory=lambda: {"special": 4.0, "comprehensive": 1.0})
    cells: Mapping[str, float] = field(default_factory=dict)  # grid_id -> weight (wins over kind)
    revisit_s: Mapping[str, float] = field(default_factory=dict)  # kind -> target; default the cell's revisit_min
    incident_boost: float = 3.0
    incident_radius_m: float = 400.0
    incident_boost_s: float = 1800.0
    min_stale: float = 0.25  # parts seen within this share of their revisit target are not worth a flight


URGENT = 1e6  # urgency of a cell the operator asked for, above any staleness
TERRITORY_M = 1000.0  # a dock's own parts: no more than this further from it than from the nearest dock
CANDIDATES = 100
TOP_UP_TRIES = 4  # parts considered for one sortie (enough to fill a battery several times)
Seen = Mapping[object, float | None]  # grid_id or (grid_id, part) -> scenario s last seen (None: never)


class SortieChooser:
    """One shift's fixed inputs (the plan's units, their distances to the docks); `next_sortie`
    is then a function of what changes: time, the ledger, the other drones' claims."""

    def __init__(self, plan: PatrolPlan, weights: ShiftWeights | None = None, precompute: bool = True):
        if not plan.units or plan.transit is None:
            raise ValueError("plan has no work units (built by an older planner): plan it again")
        self.plan = plan
        self.weights = weights or ShiftWeights()
        self.cfg = plan.config
        self.units = list(plan.units)
        self.grids = plan.grids
        self.graph = plan.transit
        self.speed = self.cfg.fleet.cruise_speed_m_s
        self.budget_s = self.cfg.fleet.sortie_budget_s
        self.centres = np.array([u.centre_m for u in self.units], float)
        self.radius = np.array([u.radius_m for u in self.units], float)
        self.work = np.array([u.work_s for u in self.units], float)
        kinds = {c.grid_id: c.kind for c in self.grids.cells}
        self.kind = [kinds[u.grid_id] for u in self.units]
        w = self.weights
        self.target_s = np.array([w.revisit_s.get(k, u.revisit_s) for u, k in zip(self.units, self.kind)], float)
        self.weight = np.array([w.cells.get(u.grid_id, w.kinds.get(k, 1.0)) for u, k in zip(self.units, self.kind)])
        self._dock_dist: dict[str, np.ndarray] = {}
        self._dmat: np.ndarray | None = None
        self.layers = {d.drone_id: d.transit_alt_m for d in plan.drones}
        self.docks = {d.drone_id: d.dock_id for d in plan.drones}
        self.rally = [(d.lat, d.lon) for d in self.grids.docks]
        self.slack_s = 2 * layer_change_s(self.cfg)
        if precompute:  # once per shift (~6 s for the 972-cell sample), so no drone waits for it later
            for d in set(self.docks.values()):
                self.dock_distances(d)
            self._distances(next(iter(self.docks.values())), np.arange(len(self.units)))

    def dock_distances(self, dock_id: str) -> np.ndarray:
        if dock_id not in self._dock_dist:
            dock = self.grids.dock(dock_id)
            self._dock_dist[dock_id] = self.graph.distance_matrix(self.centres, np.array([dock.xy_m]))[:, 0]
        return self._dock_dist[dock_id]

    def _distances(self, dock_id: str, idx: np.ndarray) -> np.ndarray:
        """Flight distances dock + units[idx] (the dock first), remembered over the shift: most
        sorties draw on parts an earlier one already looked at."""
        if self._dmat is None:
            self._dmat = np.full((len(self.units), len(self.units)), np.nan)
        sub = self._dmat[np.ix_(idx, idx)]
        rows = np.flatnonzero(np.isnan(sub).any(axis=1))
        if len(rows):
            fresh = self.graph.distance_matrix(self.centres[idx[rows]], self.centres[idx])
            self._dmat[idx[rows][:, None], idx[None, :]] = fresh
            self._dmat[idx[:, None], idx[rows][None, :]] = fresh.T
            sub = self._dmat[np.ix_(idx, idx)]
        dd = self.dock_distances(dock_id)[idx]
        out = np.empty((len(idx) + 1, len(idx) + 1))
        out[0, 0] = 0.0
        out[0, 1:] = out[1:, 0] = dd
        out[1:, 1:] = sub
        return out

    def urgency(self, now_s: float, last_seen_s: Seen, hot_spots=(), shift_start_s: float = 0.0,
                urgent: Collection[str] = ()) -> np.ndarray:
        """Weighted staleness per unit, in revisit targets (1.0 = due now)."""
        seen_raw = np.array([_last_seen(last_seen_s, u.grid_id, u.part, math.nan) for u in self.units], float)
        seen = np.where(np.isnan(seen_raw), shift_start_s, seen_raw)
        stale = np.maximum(0.0, now_s - seen)
        weight = self.weight.copy()
        w = self.weights
        near = np.zeros(len(self.units), bool)  # several reports of one incident boost once
        for x, y, t in hot_spots:
            if now_s - t <= w.incident_boost_s:
                near |= np.hypot(self.centres[:, 0] - x, self.centres[:, 1] - y) <= w.incident_radius_m + self.radius
        weight[near] *= w.incident_boost
        out = weight * np.maximum(stale, 1.0) / self.target_s  # never seen: worth flying from the start
        out[(stale < w.min_stale * self.target_s) & ~np.isnan(seen_raw)] = 0.0
        if urgent:  # the operator's "patrol these cells now": before anything else
            ask = np.array([u.grid_id in urgent for u in self.units])
            out[ask] = URGENT + np.maximum(stale[ask], 1.0) / self.target_s[ask]
        return out

    def next_sortie(self, drone_id: str, now_s: float, last_seen_s: Seen, claimed: Collection = (),
                    hot_spots=(), dock_id: str | None = None, sortie_id: str = "shift01",
                    shift_start_s: float = 0.0, budget_s: float | None = None,
                    urgent: Collection[str] = ()) -> Sortie | None:
        """The sortie `drone_id` should fly from `dock_id` (default its planned dock) at `now_s`:
        the most urgent reachable part first, then the parts that add most urgency per second of
        flight, until the battery budget is full. None when nothing is stale enough to fly.

        `claimed`: grid_ids (or (grid_id, part)) other drones are flying now; `hot_spots`:
        (x_m, y_m, t_s) of recent incidents in the grid's metres; `urgent`: grid_ids the operator
        asked for, flown before anything else.
        """
        dock_id = dock_id or self.docks.get(drone_id) or self.grids.docks[0].grid_id
        dock = self.grids.dock(dock_id)
        budget = self.budget_s if budget_s is None else min(self.budget_s, budget_s)
        overhead = self.plan.overhead_s
        dd = self.dock_distances(dock_id)
        score = self.urgency(now_s, last_seen_s, hot_spots, shift_start_s, urgent)
        reach = overhead + self.slack_s + 2 * (dd + self.radius) / self.speed + self.work <= budget
        free = np.array([u.grid_id not in claimed and (u.grid_id, u.part) not in claimed for u in self.units])
        ok = reach & free & (score > 0)
        # Parts nearer another dock in use are left to its drones while this dock has work.
        home = dd <= np.min([self.dock_distances(d) for d in set(self.docks.values())], axis=0) + TERRITORY_M
        cand = np.flatnonzero(ok & home)
        if not len(cand):
            cand = np.flatnonzero(ok)
        if not len(cand):
            return None
        # The seed is the most urgent part (the nearest of equals); the sortie is then filled
        # from the most urgent parts and those nearest the seed.
        seed = int(cand[np.lexsort((dd[cand], -score[cand]))[0]])
        near = np.hypot(*(self.centres[cand] - self.centres[seed]).T)
        pool = np.concatenate([[seed], cand[np.argsort(-score[cand], kind="stable")[:CANDIDATES // 2]],
                               cand[np.argsort(near, kind="stable")[:CANDIDATES // 2]]])
        cand = np.array(list(dict.fromkeys(pool.tolist())))
        pts = np.vstack([np.asarray(dock.xy_m, float)[None], self.centres[cand]])
        travel = self._distances(dock_id, cand) / self.speed
        work = np.concatenate([[0.0], self.work[cand]])
        val = np.concatenate([[0.0], score[cand]])
        route = [1]  # nodes into cand (+1); the most urgent first
        spent = travel[0, 1] + work[1] + travel[1, 0]
        limit = budget - overhead
        left = np.ones(len(pts), bool)
        left[:2] = False
        while left.any():
            nodes = np.array([0, *route, 0])
            a, b = nodes[:-1], nodes[1:]
            js = np.flatnonzero(left)
            # Cheapest insertion of every candidate at every place in the route, at once.
            extra = travel[a[None, :], js[:, None]] + travel[js[:, None], b[None, :]] - travel[a, b][None, :]
            pos = np.argmin(extra, axis=1)
            cost = extra[np.arange(len(js)), pos] + work[js]
            fits = spent + cost <= limit
            if not fits.any():
                break
            ratio = np.where(fits, val[js] / np.maximum(cost, 1.0), -np.inf)
            k = int(np.argmax(ratio))
            route.insert(int(pos[k]), int(js[k]))
            spent += float(cost[k])
            left[js[k]] = False
            left[js[~fits]] = False  # the route only grows: what does not fit now never will
        route = two_opt(route, travel)

        def build(r):
            return build_route(dock, 0, [self.units[int(cand[j - 1])] for j in r], self.graph, self.cfg, overhead,
                               "shift")

        tpl = build(route)
        while tpl.duration_s > budget and len(route) > 1:  # the estimate was centre to centre
            route.remove(min(route, key=lambda j: val[j]))
            tpl = build(route)
        if tpl.duration_s > budget:
            return None
        # The estimate is conservative (a route enters and leaves a part at its nearer ends):
        # top the battery up with the parts worth most per added second, built exactly.
        rest = [j for j in range(1, len(pts)) if j not in route]
        for _ in range(TOP_UP_TRIES):
            if not rest or budget - tpl.duration_s < 20.0:
                break
            nodes = np.array([0, *route, 0])
            js = np.array(rest)
            extra = (travel[nodes[:-1][None, :], js[:, None]] + travel[js[:, None], nodes[1:][None, :]]
                     - travel[nodes[:-1], nodes[1:]][None, :])
            pos = np.argmin(extra, axis=1)
            cost = extra[np.arange(len(js)), pos] + work[js]
            k = int(np.argmax(val[js] / np.maximum(cost, 1.0)))
            j = int(js[k])
            rest.remove(j)
            trial = two_opt(route[:int(pos[k])] + [j] + route[int(pos[k]):], travel)
            t2 = build(trial)
            if t2.duration_s <= budget:
                route, tpl = trial, t2
        if len(route) > 1:  # fly the loop the way round that reaches the stalest parts soonest
            rate = np.concatenate([[0.0], self.weight[cand] / self.target_s[cand]])

            def staleness_on_arrival(r, offsets):
                return max(val[j] + rate[j] * off for j, off in zip(r, offsets))

            def estimated_offsets(r):  # centre to centre, half the part swept
                nodes = [0, *r]
                legs = np.cumsum([travel[a, b] + work[a] for a, b in zip(nodes[:-1], nodes[1:])])
                return legs + work[r] / 2

            back_r = route[::-1]
            if (staleness_on_arrival(back_r, estimated_offsets(back_r))
                    < staleness_on_arrival(route, estimated_offsets(route))):
                back = build(back_r)  # built only when the estimate says it is worth it
                if back.duration_s <= budget and (staleness_on_arrival(back_r, back.visit_offsets_s)
                                                  < staleness_on_arrival(route, tpl.visit_offsets_s)):
                    route, tpl = back_r, back
        alt = self.layers.get(drone_id)
        if alt is None:
            alt = self.cfg.transit_alt_m(len(self.layers))
        mission = build_mission(tpl, self.grids, dock, self.cfg, alt, self.rally, drone_id, sortie_id)
        return Sortie(sortie_id, drone_id, dock_id, "shift", 0, tuple(dict.fromkeys(u.grid_id for u in tpl.units)),
                      tuple((u.grid_id, u.part, u.parts) for u in tpl.units),
                      tuple(l for u in tpl.units for l in u.lanes), mission, tpl.points_m, tpl.distance_m,
                      tpl.duration_s, now_s, tuple(tpl.visit_offsets_s), alt, tpl.survey, tpl.sweep_of)

    def overdue_wait_s(self, t0_s: float, t1_s: float, last_seen_s: Seen, claimed: Collection = (),
                       shift_start_s: float = 0.0) -> float:
        """Seconds of [t0_s, t1_s] a drone waiting on its dock with a charged pack spends while a
        part nobody is flying is past its revisit target: idle time the issue wants at ~0."""
        due = [_last_seen(last_seen_s, u.grid_id, u.part, shift_start_s) + target
               for u, target in zip(self.units, self.target_s)
               if u.grid_id not in claimed and (u.grid_id, u.part) not in claimed]
        return max(0.0, t1_s - max(t0_s, min(due, default=math.inf)))


def first_cycle(plan: PatrolPlan) -> dict[str, list[Sortie]]:
    """Per drone, the planned sorties a shift flies before its schedule goes live: those of the
    first patrol cycle and the revisit rounds that start before the first cycle ends."""
    return {d.drone_id: [s for s in d.sorties if s.cycle <= 1 and s.start_s < plan.makespan_s] for d in plan.drones}


def _last_seen(seen: Seen, grid_id: str, part: int, default: float) -> float:
    v = seen.get((grid_id, part))
    if v is None:
        v = seen.get(grid_id)
    return default if v is None else float(v)


def next_sortie(plan: PatrolPlan, drone_id: str, now_s: float, last_seen_s: Seen, claimed: Collection = (),
                hot_spots=(), weights: ShiftWeights | None = None, **kwargs) -> Sortie | None:
    """One-off form of `SortieChooser(plan, weights).next_sortie(...)` (a shift keeps the chooser)."""
    return SortieChooser(plan, weights).next_sortie(drone_id, now_s, last_seen_s, claimed, hot_spots, **kwargs)
