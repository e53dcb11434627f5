"""A whole patrol shift on a kinematic fleet model: no MAVLink, no simulator, hours in seconds.

Each sortie is taken as planned (its duration, its parts seen at their planned visit offsets);
a landed drone is ready again after its dock's service (`common.dock_service.PackPool`). The
live schedule is the same `SortieChooser` the run loop calls, so the bench
(bench/shift_bench.py) and the tests measure the scheduler itself.

    result = simulate_shift(plan, shift_s=8 * 3600, first_cycle="plan")
    result.gaps_s(), result.within_target_share("special"), result.choose_s
"""
from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field
from typing import Mapping

from common.dock_service import DockService, PackPool

from .next_sortie import ShiftWeights, SortieChooser, first_cycle
from .planner import PatrolPlan

RETRY_S = 30.0  # a drone nothing was stale enough for asks again this much later


@dataclass
class ShiftResult:
    plan: PatrolPlan
    shift_s: float
    visits: dict[tuple[str, int], list[float]] = field(default_factory=dict)  # (grid_id, part) -> times
    flown: list[tuple[str, str, float, float, tuple[str, ...]]] = field(default_factory=list)  # drone, id, start, end, cells
    choose_s: list[float] = field(default_factory=list)  # wall seconds per next_sortie call
    idle_overdue_s: float = 0.0  # drone-seconds a ready drone waited while an unclaimed part was overdue
    lost: dict[str, tuple[float, list[str]]] = field(default_factory=dict)  # drone -> (when, cells it left unseen)
    target_s: dict[tuple[str, int], float] = field(default_factory=dict)

    def gaps_s(self) -> dict[tuple[str, int], float]:
        """Longest unseen stretch per part over the shift (from the start, to the end)."""
        out = {}
        for key in self.target_s:
            seq = [0.0, *sorted(t for t in self.visits.get(key, []) if t <= self.shift_s), self.shift_s]
            out[key] = max(b - a for a, b in zip(seq[:-1], seq[1:]))
        return out

    def within_target_share(self, kind: str | None = None, step_s: float = 60.0) -> float:
        """Share of (part x time) over the shift in which the part was seen within its target
        interval, counted after its first target interval (nothing can be seen before take-off)."""
        kinds = {c.grid_id: c.kind for c in self.plan.grids.cells}
        ok = total = 0
        for key, target in self.target_s.items():
            if kind is not None and kinds[key[0]] != kind:
                continue
            seen = sorted(self.visits.get(key, []))
            t = target
            i, last = 0, -math.inf
            while t <= self.shift_s:
                while i < len(seen) and seen[i] <= t:
                    last = seen[i]
                    i += 1
                total += 1
                ok += (t - last) <= target if last > -math.inf else 0
                t += step_s
        return ok / total if total else 1.0

    def visit_counts(self) -> dict[str, int]:
        """Per cell: how many times all its parts were seen (the fewest over its parts)."""
        per_cell: dict[str, list[int]] = {}
        for (g, _), _t in self.target_s.items():
            per_cell.setdefault(g, [])
        for (g, p) in self.target_s:
            per_cell[g].append(len([t for t in self.visits.get((g, p), []) if t <= self.shift_s]))
        return {g: min(v) for g, v in per_cell.items()}


def simulate_shift(plan: PatrolPlan, shift_s: float, weights: ShiftWeights | None = None,
                   services: Mapping[str, DockService] | None = None, first_cycle_from: str = "plan",
                   lose: Mapping[str, float] | None = None, incidents=(), seen_at_start=None) -> ShiftResult:
    """Fly the shift: the plan's first cycle (`first_cycle_from="plan"`) or the live schedule
    from the start (`"live"`), then `SortieChooser.next_sortie` for each drone back on its dock
    (and, while it waits for its next planned sortie, a live one that is back in time).

    lose: drone_id -> scenario s it drops out (its unflown parts go back to the pool);
    incidents: (x_m, y_m, t_s) reported incidents (cells near them weigh more for a while).
    """
    chooser = SortieChooser(plan, weights)
    res = ShiftResult(plan, shift_s)
    for u, target in zip(chooser.units, chooser.target_s):
        res.target_s[(u.grid_id, u.part)] = float(target)
    services = services or {}
    pools = {d.dock_id: PackPool(services.get(d.dock_id, DockService(swap_s=plan.config.fleet.battery_swap_min * 60)))
             for d in plan.drones}
    lose = dict(lose or {})
    last_seen: dict[tuple[str, int], float] = dict(seen_at_start or {})
    claimed: dict[tuple[str, int], str] = {}  # part -> drone flying it now
    heap: list = []
    seq = 0

    def push(t, kind, *payload):
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (t, seq, kind, payload))

    planned = first_cycle(plan) if first_cycle_from == "plan" else {d.drone_id: [] for d in plan.drones}
    queues = {d: list(ss) for d, ss in planned.items()}
    for n, d in enumerate(plan.drones):
        start = queues[d.drone_id][0].start_s if queues[d.drone_id] else n * plan.config.fleet.launch_stagger_s
        push(start, "ready", d.drone_id)
        if d.drone_id in lose:
            push(lose[d.drone_id], "lost", d.drone_id)
    alive = {d.drone_id for d in plan.drones}
    flying: dict[str, tuple[float, list[tuple[str, int]]]] = {}  # drone -> (end, parts not yet seen)
    count = 0
    while heap:
        t, _, kind, payload = heapq.heappop(heap)
        if t > shift_s:
            break
        drone = payload[0]
        if drone not in alive:
            continue
        if kind == "lost":
            alive.discard(drone)
            left = flying.pop(drone, (0.0, []))[1]
            for key in left:
                claimed.pop(key, None)
            res.lost[drone] = (t, sorted({g for g, _ in left}))
            continue
        if kind == "visit":
            key = payload[1]
            last_seen[key] = t
            res.visits.setdefault(key, []).append(t)
            claimed.pop(key, None)
            if drone in flying and key in flying[drone][1]:
                flying[drone][1].remove(key)
            continue
        if kind == "landed":
            flying.pop(drone, None)
            push(pools[plan_dock(plan, drone)].swap(t), "ready", drone)
            continue
        # ready: the plan's next first-cycle sortie, else the live choice
        sortie = None
        q = queues.get(drone)
        while q and sortie is None:
            s = q.pop(0)
            if s.start_s > t + 1e-6:
                q.insert(0, s)
                break
            sortie = s
        others = {(g, p) for d, qq in queues.items() if d != drone for s in qq for g, p, _ in s.parts}
        if sortie is None and q:  # until its next planned sortie: a live one that is back in time, if any
            swap = pools[plan_dock(plan, drone)].service.swap_s
            count += 1
            w0 = time.perf_counter()
            sortie = chooser.next_sortie(drone, t, last_seen, claimed=set(claimed) | others, hot_spots=incidents,
                                         sortie_id=f"shift{count:03d}", budget_s=q[0].start_s - swap - t)
            res.choose_s.append(time.perf_counter() - w0)
            if sortie is None:
                res.idle_overdue_s += chooser.overdue_wait_s(t, q[0].start_s, last_seen, claimed)
                push(q[0].start_s, "ready", drone)
                continue
        elif sortie is None:
            count += 1
            w0 = time.perf_counter()
            sortie = chooser.next_sortie(drone, t, last_seen, claimed=set(claimed) | others, hot_spots=incidents,
                                         sortie_id=f"shift{count:03d}")
            res.choose_s.append(time.perf_counter() - w0)
            if sortie is None:
                res.idle_overdue_s += chooser.overdue_wait_s(t, t + RETRY_S, last_seen, claimed)
                push(t + RETRY_S, "ready", drone)
                continue
        keys = [(g, p) for g, p, _ in sortie.parts]
        for key, off in zip(keys, sortie.visit_s):
            claimed[key] = drone
            push(t + off, "visit", drone, key)
        flying[drone] = (t + sortie.duration_s, list(keys))
        res.flown.append((drone, sortie.sortie_id, t, t + sortie.duration_s, sortie.grid_ids))
        push(t + sortie.duration_s, "landed", drone)
    return res


def plan_dock(plan: PatrolPlan, drone_id: str) -> str:
    return next(d.dock_id for d in plan.drones if d.drone_id == drone_id)
