"""Sorties -> a timeline per drone over the patrol horizon (revisit rounds and the patrol cycle)."""
from __future__ import annotations

import heapq
import math

from .config import PlannerConfig
from .sorties import SortieRoute


UTIL_CAP = 0.65  # revisit utilisation one drone takes on (rounds are not preemptible)


def schedule_timeline(roster, dock_idx, cycle_t, special_t, cfg: PlannerConfig, horizon_s: float):
    """Event-driven timeline of every drone over the horizon.

    Revisit rounds are dealt to a dock's drones first-fit by utilisation (battery + swap time
    over period, at most UTIL_CAP per drone, so rounds that cannot interrupt each other still
    start on time). A drone flies each of its rounds when it falls due (within its period of
    its last start; the first start early enough that the last cell is seen within the period)
    and fills the time between with cycle sorties that fit. Drones without rounds fly the
    dock's patrol cycle (sorties with the highest-priority cells first, then the longest),
    repeated until the horizon (the first cycle is always finished, even past it), and any free
    drone takes a round that is overdue.
    """
    swap_s = cfg.fleet.battery_swap_min * 60.0
    tol_s = 60.0  # a round may start a minute early; a minute late is not yet "overdue"
    timeline: list[list[tuple[float, SortieRoute, int]]] = [[] for _ in roster]
    warnings: list[str] = []
    k_of = {d: k for k, d in enumerate(dock_idx)}

    def cycle_order(ts):
        # Sorties holding higher-priority cells first; among equals the longest first (LPT).
        return sorted(ts, key=lambda t: (-max(u.priority for u in t.units), -t.duration_s))

    queues = [cycle_order(ts) for ts in cycle_t]
    cycle_no = [1] * len(dock_idx)
    deadline = [[max(0.0, tpl.period_s - max(tpl.visit_offsets_s, default=0.0)) for tpl in ts] for ts in special_t]
    owner: dict[int, list[tuple[int, int]]] = {}  # drone -> [(dock, round)]
    overloaded = 0
    for k, ts in enumerate(special_t):
        mine = [r for r, (_, di, _) in enumerate(roster) if k_of[di] == k]
        util = {r: 0.0 for r in mine}
        for j in sorted(range(len(ts)), key=lambda j: -(ts[j].duration_s + swap_s) / ts[j].period_s):
            u = (ts[j].duration_s + swap_s) / ts[j].period_s
            fit = [r for r in mine if util[r] + u <= UTIL_CAP] or [r for r in mine if util[r] == 0.0]
            if not fit:
                overloaded += 1
                fit = [min(mine, key=lambda r: util[r])]
            r = fit[0]
            util[r] += u
            owner.setdefault(r, []).append((k, j))
    heap = []
    rank: dict[int, int] = {}
    for r, (_, di, _) in enumerate(roster):
        k = k_of[di]
        heap.append((rank.get(k, 0) * cfg.fleet.launch_stagger_s, r))
        rank[k] = rank.get(k, 0) + 1
    heapq.heapify(heap)
    late = 0

    def take_cycle(k: int, t: float, window: float = math.inf):
        """The longest cycle sortie of dock k that fits the window (refilling after a cycle)."""
        if not queues[k] and t < horizon_s and cycle_t[k]:
            cycle_no[k] += 1
            queues[k] = cycle_order(cycle_t[k])
        if not queues[k] or (t >= horizon_s and cycle_no[k] > 1):
            return None
        for i, tpl in enumerate(queues[k]):
            if tpl.duration_s + swap_s <= window:
                return queues[k].pop(i), cycle_no[k]
        return None

    while heap:
        t, r = heapq.heappop(heap)
        k = k_of[roster[r][1]]
        pick = None
        if t < horizon_s:
            overdue = [j for j, due in enumerate(deadline[k]) if due < t - tol_s]
            own = [j for kk, j in owner.get(r, []) if kk == k]
            if overdue:
                j = min(overdue, key=lambda j: deadline[k][j])
                late += 1
            elif own:
                j = min(own, key=lambda j: deadline[k][j])
            else:
                j = None
            if j is not None:
                # Latest time this drone can start its rounds back to back (earliest deadline
                # first) with none late; idle time before that is filled with cycle sorties.
                queue_r = sorted({j, *own}, key=lambda jj: deadline[k][jj])
                latest, busy = math.inf, 0.0
                for jj in queue_r:
                    latest = min(latest, deadline[k][jj] - busy)
                    busy += special_t[k][jj].duration_s + swap_s
                first = queue_r[0]
                if latest <= t + tol_s:
                    pick = (special_t[k][first], 0)
                    deadline[k][first] = t + special_t[k][first].period_s
                else:
                    pick = take_cycle(k, t, window=latest - t)
                    if pick is None:
                        heapq.heappush(heap, (max(t + 1.0, latest - tol_s), r))  # stand by for the round
                        continue
        if pick is None:
            pick = take_cycle(k, t)
            if pick is None:
                if t < horizon_s and special_t[k]:  # cycle done: stand by for overdue rounds
                    heapq.heappush(heap, (max(t + 1.0, min(deadline[k]) + tol_s + 1.0), r))
                continue
        tpl, cyc = pick
        timeline[r].append((t, tpl, cyc))
        heapq.heappush(heap, (t + tpl.duration_s + swap_s, r))
    if overloaded:
        warnings.append(f"{overloaded} revisit round(s) share an overloaded drone: too few drones at their dock")
    if late:
        warnings.append(f"{late} revisit round(s) started late: not enough drones at their dock")
    return timeline, warnings
