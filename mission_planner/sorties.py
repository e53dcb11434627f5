"""Work units -> sorties: units to docks, revisit rounds and cycle sorties per dock, exact routes.

Packing runs on estimates (unit centres, routing.py); every sortie is then built exactly
(`build_route`: unit directions, no-fly detours, transit layer changes) and repaired when
the exact route runs over the battery.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .config import PlannerConfig
from .grids import Dock
from .routing import greedy_sorties, improve_with_ortools, route_time
from .transit import TransitGraph
from .units import WorkUnit


@dataclass
class SortieRoute:
    """A sortie's route before it is given a drone and a time."""

    dock_index: int
    units: list[WorkUnit]
    points_m: np.ndarray  # dock ... dock
    survey: np.ndarray  # bool per point: flown at survey altitude (else the transit layer)
    distance_m: float
    duration_s: float
    visit_offsets_s: list[float]
    purpose: str
    period_s: float = math.inf
    sweep_of: np.ndarray | None = None  # per point: 1 + index of the unit it sweeps, 0 in transit


def assign_specials(units: list[WorkUnit], dist_ud: np.ndarray, drones_at: np.ndarray, cfg: PlannerConfig,
                    overhead_s: float) -> list[int]:
    """Special units to docks: near ones first to their nearest dock, each to the dock (no more
    than 1 km further than its nearest) whose drones are least loaded with revisits so far."""
    speed = cfg.fleet.cruise_speed_m_s
    swap_s = cfg.fleet.battery_swap_min * 60.0
    assign = [-1] * len(units)
    load = np.zeros(dist_ud.shape[1])
    idx = [i for i, u in enumerate(units) if u.special]
    if not idx:
        return assign
    srt = np.sort(dist_ud[idx], axis=1)
    regret = srt[:, 1] - srt[:, 0] if srt.shape[1] > 1 else np.zeros(len(idx))
    for j in np.argsort(-regret):
        i = idx[j]
        u = units[i]
        options = np.flatnonzero(dist_ud[i] <= srt[j, 0] + 1000.0)
        # Rounds share their takeoff, landing and swap among ~5 cells.
        cost = (u.work_s + 0.6 * dist_ud[i, options] / speed + (overhead_s + swap_s) / 5) / u.revisit_s
        k = int(options[np.argmin((load[options] + cost) / drones_at[options])])
        load[k] += cost[list(options).index(k)]
        assign[i] = k
    return assign


def assign_cycle(units: list[WorkUnit], assign: list[int], dist_ud: np.ndarray, drones_at: np.ndarray,
                 special_load: np.ndarray, cfg: PlannerConfig, budget_s: float, overhead_s: float,
                 dock_xy: np.ndarray | None = None,
                 finish_of: Callable[[list[list[SortieRoute]]], np.ndarray] | None = None) -> list[int]:
    """Cycle (non-special) units to docks, so that the docks finish their cycle together.

    A dock's share of the cycle work starts proportional to its drones minus the drone-time its
    revisit rounds take; units are placed in order of regret (how much worse their second-best
    dock is), each to the nearest dock that still has room, never more than 1.5 km further than
    its nearest or beyond one battery's reach. The shares are then corrected a few times from a
    quick greedy packing per dock (straight-line distances), since far cells cost more transit.
    With `finish_of` (per dock its estimated cycle sorties -> per dock when its first cycle
    ends, e.g. the timeline itself), the correction uses when each dock really finishes: drones
    owning revisit rounds stand by between them, and rounds stop at the horizon, which a
    drone-time share alone does not see.
    """
    speed = cfg.fleet.cruise_speed_m_s
    swap_s = cfg.fleet.battery_swap_min * 60.0
    n_docks = dist_ud.shape[1]
    assign = list(assign)
    comp = [i for i, u in enumerate(units) if not u.special]
    if not comp:
        return assign
    if n_docks == 1:
        for i in comp:
            assign[i] = 0
        return assign
    cost = np.array([[units[i].work_s + 2 * dist_ud[i, k] / speed * 0.35 for k in range(n_docks)] for i in comp])
    capacity_w = np.maximum(drones_at - special_load, 0.25 * drones_at)
    srt = np.sort(dist_ud[comp], axis=1)
    regret = srt[:, 1] - srt[:, 0]
    near_enough = dist_ud[comp] <= srt[:, :1] + 1500.0
    fits = overhead_s + 2 * dist_ud[comp] / speed + np.array([units[i].work_s for i in comp])[:, None] <= budget_s * 0.95
    allowed = near_enough & fits
    allowed[np.arange(len(comp)), np.argmin(dist_ud[comp], axis=1)] = True
    order = np.argsort(-regret)
    total = cost.min(axis=1).sum()

    def place(share: np.ndarray) -> np.ndarray:
        room = share * total * 1.04 + cost.max()
        out = np.zeros(len(comp), int)
        for j in order:
            i = comp[j]
            options = [k for k in np.argsort(dist_ud[i]) if allowed[j, k]]
            for k in options:
                if room[k] >= cost[j, k]:
                    break
            else:
                k = max(options, key=lambda kk: room[kk])
            room[k] -= cost[j, k]
            out[j] = k
        return out

    centres = np.array([units[i].centre_m for i in comp])  # a computed property: once, not per estimate

    def finish_estimate(where: np.ndarray) -> np.ndarray:
        est = np.zeros(n_docks)
        rough: list[list[SortieRoute]] = [[] for _ in range(n_docks)]
        for k in range(n_docks):
            sel = np.flatnonzero(where == k)
            if not len(sel):
                continue
            pts = np.vstack([dock_xy[k][None], centres[sel]])
            travel = np.hypot(*(pts[:, None, :] - pts[None, :, :]).transpose(2, 0, 1)) / speed
            work = np.concatenate([[0.0], [units[comp[j]].work_s for j in sel]])
            ang = np.arctan2(pts[1:, 1] - pts[0, 1], pts[1:, 0] - pts[0, 0])
            routes = greedy_sorties(ang, travel, work, budget_s - overhead_s, polish=False)
            busy = sum(route_time(r, travel, work) + overhead_s + swap_s for r in routes)
            est[k] = busy / capacity_w[k]
            rough[k] = [SortieRoute(k, [units[comp[sel[i - 1]]] for i in r], np.zeros((0, 2)), np.zeros(0, bool), 0.0,
                                    route_time(r, travel, work) + overhead_s, [], "cycle") for r in routes]
        return np.asarray(finish_of(rough), float) if finish_of is not None else est

    share = capacity_w / capacity_w.sum()
    where = place(share)
    if dock_xy is not None:
        best_where, best_max = where, math.inf
        for _ in range(8 if finish_of is not None else 4):
            est = finish_estimate(where)
            if est.max() < best_max:
                best_where, best_max = where, est.max()
            if est.max() - est.min() < (0.01 if finish_of is not None else 0.03) * est.mean():
                break
            share = share * (est.mean() / np.maximum(est, 1.0))
            share = share / share.sum()
            where = place(share)
        where = best_where
    for j, k in enumerate(where):
        assign[comp[j]] = int(k)
    return assign


def revisit_rounds(dock: Dock, k: int, spec: list[WorkUnit], graph: TransitGraph, cfg: PlannerConfig,
                   budget_s: float, overhead_s: float, time_cap_s: float, swap_s: float) -> list[SortieRoute]:
    """Revisit rounds of one dock's special cells, each flown every `period_s`.

    Two packings are compared by the drone-time they take per hour: one set of rounds per
    revisit period, or every cell in rounds at the shortest period (fewer, fuller rounds can
    beat seeing some cells more often than asked).
    """
    if not spec:
        return []

    def rounds(groups):
        out = []
        for period, group in groups:
            for tpl in pack_sorties(dock, k, group, graph, cfg, budget_s, overhead_s, time_cap_s, "special"):
                tpl.period_s = period
                out.append(tpl)
        return out

    def load(ts):
        return sum((tp.duration_s + swap_s) / tp.period_s for tp in ts)

    periods = sorted({u.revisit_s for u in spec})
    by_period = rounds([(p, [u for u in spec if u.revisit_s == p]) for p in periods])
    if len(periods) == 1:
        return by_period
    merged = rounds([(periods[0], spec)])
    return merged if load(merged) < load(by_period) else by_period


def pack_sorties(dock: Dock, dock_index: int, units: list[WorkUnit], graph: TransitGraph, cfg: PlannerConfig,
                 budget_s: float, overhead_s: float, time_cap_s: float, purpose: str) -> list[SortieRoute]:
    """One dock's units in battery-sized sorties: greedy petals, OR-Tools, then exact routes."""
    if not units:
        return []
    speed = cfg.fleet.cruise_speed_m_s
    flight_budget = budget_s - overhead_s
    pts = np.vstack([np.asarray(dock.xy_m)[None], np.array([u.centre_m for u in units])])
    dist = graph.distance_matrix(pts)
    # Between unit centres: an estimate (a route enters and leaves a unit at its ends).
    travel = dist / speed
    work = np.concatenate([[0.0], [u.work_s for u in units]])
    ang = np.arctan2(pts[1:, 1] - pts[0, 1], pts[1:, 0] - pts[0, 0])
    pack_budget = flight_budget - 2 * layer_change_s(cfg)  # estimate; exact routes are repaired below
    routes = greedy_sorties(ang, travel, work, pack_budget)
    if time_cap_s > 0:
        swap = cfg.fleet.battery_swap_min * 60.0
        routes = improve_with_ortools(routes, travel, work, pack_budget, overhead_s + swap, time_cap_s,
                                      cfg.solver.solution_limit)

    def build(route: list[int]) -> SortieRoute:
        return build_route(dock, dock_index, [units[i - 1] for i in route], graph, cfg, overhead_s, purpose)

    # The estimate is centre to centre; the exact route may run over. Drop from an over-budget
    # sortie the unit whose removal saves most, then re-home dropped units where they fit.
    built: list[tuple[list[int], SortieRoute]] = []
    spilled: list[int] = []
    for r in routes:
        r = list(r)
        tpl = build(r)
        while tpl.duration_s > budget_s and len(r) > 1:
            trials = [(build(r[:i] + r[i + 1:]), i) for i in range(len(r))]
            tpl, i = min(trials, key=lambda ti: ti[0].duration_s)
            spilled.append(r.pop(i))
        built.append((r, tpl))
    leftover: list[int] = []
    for u in spilled:
        options = []
        for j, (r, _) in enumerate(built):
            nodes = [0, *r, 0]
            for pos in range(1, len(nodes)):
                a, b = nodes[pos - 1], nodes[pos]
                options.append((travel[a, u] + travel[u, b] - travel[a, b], j, pos))
        for _, j, pos in sorted(options)[:4]:
            r2 = built[j][0][:pos - 1] + [u] + built[j][0][pos - 1:]
            t2 = build(r2)
            if t2.duration_s <= budget_s:
                built[j] = (r2, t2)
                break
        else:
            leftover.append(u)
    queue = deque(greedy_sorties(ang[np.array(leftover) - 1], travel[np.ix_([0, *leftover], [0, *leftover])],
                                 work[[0, *leftover]], pack_budget)) if leftover else deque()
    queue = deque([[leftover[i - 1] for i in r] for r in queue])
    while queue:
        r = queue.popleft()
        tpl = build(r)
        if tpl.duration_s > budget_s and len(r) > 1:
            cut = len(r) // 2
            queue.appendleft(r[cut:])
            queue.appendleft(r[:cut])
            continue
        built.append((r, tpl))
    return [tpl for _, tpl in built]


LONG_LEG_M = 400.0  # transit legs longer than this are flown on the drone's own layer


def layer_rise_m(cfg: PlannerConfig) -> float:
    """Worst case between survey altitude and a transit layer (the highest one)."""
    return abs(cfg.transit_alt_m(cfg.fleet.drones - 1) - cfg.coverage.altitude_m)


def layer_change_s(cfg: PlannerConfig) -> float:
    """Budget allowance for one climb out of and one descent into the cells of a sortie when the
    legs are too short to slope them (most sorties need none; packing keeps it as slack)."""
    rise = layer_rise_m(cfg)
    return 0.5 * (rise / cfg.fleet.climb_speed_m_s + rise / cfg.fleet.descent_speed_m_s)


def build_route(dock: Dock, dock_index: int, units: list[WorkUnit], graph: TransitGraph, cfg: PlannerConfig,
                overhead_s: float, purpose: str) -> SortieRoute:
    """Exact route: choose each unit's direction (DP over entry/exit ends), splice in detours."""
    home = np.asarray(dock.xy_m, float)
    ends = [(u.path_m[0], u.path_m[-1]) for u in units]
    # DP: state = unit i flown forward (0) or reversed (1); cost = straight transit so far.
    cost = np.array([math.dist(home, ends[0][0]), math.dist(home, ends[0][1])])
    back: list[np.ndarray] = []
    for i in range(1, len(units)):
        exit_prev = [ends[i - 1][1], ends[i - 1][0]]
        entry = [ends[i][0], ends[i][1]]
        m = np.array([[cost[a] + math.dist(exit_prev[a], entry[b]) for a in (0, 1)] for b in (0, 1)])
        back.append(m.argmin(axis=1))
        cost = m.min(axis=1)
    last_exit = [ends[-1][1], ends[-1][0]]
    cost = cost + np.array([math.dist(last_exit[0], home), math.dist(last_exit[1], home)])
    state = int(np.argmin(cost))
    dirs = [state]
    for b in reversed(back):
        state = int(b[state])
        dirs.append(state)
    dirs.reverse()
    pts: list[np.ndarray] = [home]
    survey: list[bool] = [False]
    sweep_of: list[int] = [0]
    visit: list[float] = []
    speed = cfg.fleet.cruise_speed_m_s
    # Long legs are flown on the drone's transit layer. The climb out of a cell and the descent
    # into the next are sloped legs (a copter limits horizontal speed so its climb/descent rate
    # holds), costing no extra time when the leg is long enough; else they are vertical.
    rise_m = layer_rise_m(cfg)
    climb_m = rise_m / cfg.fleet.climb_speed_m_s * speed
    descent_m = rise_m / cfg.fleet.descent_speed_m_s * speed
    clock = 0.0
    vertical_s = 0.0

    def add_leg(target: np.ndarray, leave_cell: bool, enter_cell: bool) -> float:
        """Append the leg from pts[-1] to target (target itself excluded); returns its length."""
        nonlocal vertical_s
        poly = np.vstack([pts[-1][None], np.asarray(graph.path(pts[-1], target))])
        seg = np.hypot(*np.diff(poly, axis=0).T)
        length = float(seg.sum())
        if not (leave_cell or enter_cell) or length <= LONG_LEG_M:
            pts.extend(poly[1:-1])
            survey.extend([True] * (len(poly) - 2))  # short hop: stays at survey altitude
            sweep_of.extend([0] * (len(poly) - 2))
            return length
        need = (climb_m if leave_cell else 0.0) + (descent_m if enter_cell else 0.0)
        sloped = length >= need
        marks = []
        if leave_cell:
            marks.append(climb_m if sloped else 0.0)
        if enter_cell:
            marks.append(length - descent_m if sloped else length)
        if not sloped:
            vertical_s += (rise_m / cfg.fleet.climb_speed_m_s if leave_cell else 0.0) + \
                (rise_m / cfg.fleet.descent_speed_m_s if enter_cell else 0.0)
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        out: list[tuple[float, np.ndarray]] = [(float(c), q) for c, q in zip(cum[1:-1], poly[1:-1])]
        for m in marks:
            i = int(np.clip(np.searchsorted(cum, m, side="right") - 1, 0, len(seg) - 1))
            f = 0.0 if seg[i] == 0 else (m - cum[i]) / seg[i]
            out.append((m, poly[i] + f * (poly[i + 1] - poly[i])))
        out.sort(key=lambda t: t[0])
        pts.extend(q for _, q in out)
        survey.extend([False] * len(out))
        sweep_of.extend([0] * len(out))
        return length

    for n, (u, d) in enumerate(zip(units, dirs)):
        path = u.path_m[::-1] if d else u.path_m
        leg_m = add_leg(path[0], leave_cell=n > 0, enter_cell=True)
        clock += leg_m / speed
        visit.append(clock + u.work_s / 2)
        clock += u.work_s
        pts.extend(path)
        survey.extend([True] * len(path))
        sweep_of.extend([n + 1] * len(path))
    add_leg(home, leave_cell=True, enter_cell=False)
    pts.append(home)
    survey.append(False)
    sweep_of.append(0)
    arr = np.asarray(pts, float)
    dist = float(np.hypot(*np.diff(arr, axis=0).T).sum())
    turns = sum(len(u.path_m) for u in units)
    duration = overhead_s + vertical_s + dist / speed + turns * cfg.fleet.turn_time_s
    takeoff_s = overhead_s * cfg.fleet.descent_speed_m_s / (cfg.fleet.climb_speed_m_s + cfg.fleet.descent_speed_m_s)
    visit = [v + takeoff_s for v in visit]
    return SortieRoute(dock_index, list(units), arr, np.asarray(survey), dist, duration, visit, purpose,
                       sweep_of=np.asarray(sweep_of))
