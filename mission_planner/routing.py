"""Packing work units into sorties from one dock: greedy sweep, then OR-Tools improvement.

A sortie is dock -> units -> dock within one battery. The greedy pass sweeps units by bearing
around the dock (compact "petals") and closes a sortie when the next unit would not fit; each
petal is then ordered by 2-opt. OR-Tools (vehicle routing with a time dimension as the
battery) starts from those petals and improves them for at most its time cap; if it finds
nothing better in time the greedy sorties stand.

All times here are seconds; distances metres. `travel_s[i, j]` covers nodes 0 = dock and
1..n = units (unit centres), `work_s[i]` is the time spent sweeping unit i (0 for the dock).
"""
from __future__ import annotations

import math

import numpy as np

try:  # OR-Tools is a hard dependency, but a broken wheel should not stop planning.
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2
except ImportError:  # pragma: no cover - exercised only on broken installs
    pywrapcp = None


def route_time(route: list[int], travel_s: np.ndarray, work_s: np.ndarray) -> float:
    """Dock -> route -> dock time (excluding takeoff/landing)."""
    if not route:
        return 0.0
    nodes = [0, *route, 0]
    return float(sum(travel_s[a, b] for a, b in zip(nodes[:-1], nodes[1:])) + work_s[route].sum())


def two_opt(route: list[int], travel_s: np.ndarray, max_rounds: int = 20) -> list[int]:
    """Classic 2-opt on dock -> route -> dock (small routes, so plain loops are fine)."""
    nodes = [0, *route, 0]
    n = len(nodes)
    for _ in range(max_rounds):
        improved = False
        for i in range(1, n - 2):
            for j in range(i + 1, n - 1):
                a, b, c, d = nodes[i - 1], nodes[i], nodes[j], nodes[j + 1]
                if travel_s[a, c] + travel_s[b, d] < travel_s[a, b] + travel_s[c, d] - 1e-6:
                    nodes[i:j + 1] = nodes[i:j + 1][::-1]
                    improved = True
        if not improved:
            break
    return nodes[1:-1]


def greedy_sorties(angles: np.ndarray, travel_s: np.ndarray, work_s: np.ndarray, budget_s: float,
                   polish: bool = True) -> list[list[int]]:
    """Sweep units (1..n) by bearing from the dock into sorties of at most budget_s (2-opt polished)."""
    n = len(angles)
    if n == 0:
        return []
    order = np.argsort(angles)
    # Start the sweep in the widest angular gap, so no petal straddles two far-apart groups.
    a = np.sort(angles)
    gaps = np.diff(np.concatenate([a, a[:1] + 2 * math.pi]))
    start = (int(np.argmax(gaps)) + 1) % n
    order = np.roll(order, -start) + 1
    sorties: list[list[int]] = []
    cur: list[int] = []
    cur_t = 0.0
    for u in order.tolist():
        if not cur:
            cur, cur_t = [u], route_time([u], travel_s, work_s)
            continue
        # Appending u: replace last->dock by last->u->dock.
        t = cur_t - travel_s[cur[-1], 0] + travel_s[cur[-1], u] + work_s[u] + travel_s[u, 0]
        if t <= budget_s:
            cur.append(u)
            cur_t = t
            continue
        sorties.append(cur)
        cur, cur_t = [u], route_time([u], travel_s, work_s)
    if cur:
        sorties.append(cur)
    return [two_opt(r, travel_s) for r in sorties] if polish else sorties


def improve_with_ortools(routes: list[list[int]], travel_s: np.ndarray, work_s: np.ndarray, budget_s: float,
                         fixed_cost_s: float, time_cap_s: float, solution_limit: int = 0) -> list[list[int]]:
    """Re-pack/re-order the routes with OR-Tools routing; returns the input if nothing better in time.

    The search stops after `solution_limit` solutions (same input, same plan, on any machine) or
    at `time_cap_s`, whichever comes first; only a slow machine hitting the cap varies.
    """
    if pywrapcp is None or time_cap_s <= 0 or not routes:
        return routes
    n = travel_s.shape[0]
    scale = 10.0  # deciseconds: integer arithmetic without losing the seconds
    cost = np.rint(travel_s * scale).astype(np.int64)
    service = np.rint(work_s * scale).astype(np.int64)
    transit = (cost + service[:, None]).tolist()
    vehicles = len(routes) + max(1, len(routes) // 6)
    manager = pywrapcp.RoutingIndexManager(n, vehicles, 0)
    model = pywrapcp.RoutingModel(manager)
    arc = model.RegisterTransitMatrix(cost.tolist())
    model.SetArcCostEvaluatorOfAllVehicles(arc)
    model.SetFixedCostOfAllVehicles(int(fixed_cost_s * scale))
    time_cb = model.RegisterTransitMatrix(transit)
    model.AddDimension(time_cb, 0, int(budget_s * scale), True, "battery")
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    params.time_limit.FromMilliseconds(max(1, int(time_cap_s * 1000)))
    if solution_limit > 0:
        params.solution_limit = solution_limit
    initial = model.ReadAssignmentFromRoutes([list(r) for r in routes] + [[]] * (vehicles - len(routes)), True)
    if initial is None:
        return routes
    solution = model.SolveFromAssignmentWithParameters(initial, params)
    if solution is None:
        return routes
    out: list[list[int]] = []
    for v in range(vehicles):
        idx = model.Start(v)
        r: list[int] = []
        idx = solution.Value(model.NextVar(idx))
        while not model.IsEnd(idx):
            r.append(manager.IndexToNode(idx))
            idx = solution.Value(model.NextVar(idx))
        if r:
            out.append(r)

    def total(rs):
        return sum(route_time(r, travel_s, work_s) + fixed_cost_s for r in rs)

    return out if total(out) <= total(routes) + 1e-6 else routes
