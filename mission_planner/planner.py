"""Grid cells -> sorties per drone over the patrol horizon: the pure planning API.

    grids = load_grids("danyang_grids.geojson")
    plan = plan_patrol(grids, PlannerConfig())            # every cell, drones spread over docks
    plan = plan_patrol(grids, cfg, cells=remaining,       # re-plan a subset after a battery swap
                       start_positions={"drone03": "DOCK-NE"})

Stages: lanes per cell (lanes.py) -> work units, big cells split so a part fits one battery
(units.py) -> units to docks, revisit rounds and cycle sorties per dock (sorties.py, with
routing.py: greedy sweep + OR-Tools; transit.py round no-fly zones) -> a timeline over the
horizon, special cells flown again whenever their revisit_min is due and the patrol cycle
repeated (schedule.py) -> one MAVLink Mission per flown sortie on the drone's own transit layer
(missions.py). This module holds the result types and runs the stages.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import shapely

from common.values import MAV_CMD_NAV_WAYPOINT, Mission

from .config import PlannerConfig
from .errors import GridProblem, PlanningError
from .grids import GridSet
from .lanes import CellSweep, CoverageLane
from .missions import build_mission
from .schedule import schedule_timeline
from .sorties import SortieRoute, assign_cycle, assign_specials, layer_change_s, pack_sorties, revisit_rounds
from .transit import TransitGraph
from .units import sweep_grid, work_units


Progress = Callable[[str], None]


@dataclass(frozen=True)
class Sortie:
    """One battery: dock -> cells -> dock, flown by one drone at a planned time."""

    sortie_id: str  # e.g. "sortie03", unique within the drone
    drone_id: str
    dock_id: str
    purpose: str  # "cycle" (the patrol cycle) or "special" (a revisit round)
    cycle: int
    grid_ids: tuple[str, ...]
    parts: tuple[tuple[str, int, int], ...]  # (grid_id, part, parts) in flying order
    lanes: tuple[CoverageLane, ...]
    mission: Mission
    route_m: np.ndarray  # the horizontal route, dock to dock, metres
    distance_m: float
    duration_s: float
    start_s: float
    visit_s: tuple[float, ...]  # per part, seconds after start when its sweep is half done
    transit_alt_m: float
    survey_mask: np.ndarray | None = None  # per route_m point: flown at survey altitude
    sweep_of: np.ndarray | None = None  # per route_m point: 1 + index in `parts` it sweeps, 0 in transit

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    @property
    def waypoint_count(self) -> int:
        return sum(1 for it in self.mission.items[1:] if it.command == MAV_CMD_NAV_WAYPOINT)


@dataclass(frozen=True)
class DronePlan:
    drone_id: str
    dock_id: str
    transit_alt_m: float
    sorties: tuple[Sortie, ...]

    @property
    def flight_s(self) -> float:
        return sum(s.duration_s for s in self.sorties)

    @property
    def end_s(self) -> float:
        return max((s.end_s for s in self.sorties), default=0.0)


@dataclass(frozen=True)
class CellReport:
    grid_id: str
    kind: str
    coverage: float
    flyable_area_m2: float
    sweep_heading_deg: float
    lanes: int
    parts: int
    revisit_min: float
    visits_s: tuple[float, ...]
    worst_gap_s: float

    @property
    def revisit_ok(self) -> bool:
        return self.worst_gap_s <= self.revisit_min * 60.0 + 1e-6


@dataclass(frozen=True)
class PatrolPlan:
    config: PlannerConfig
    grids: GridSet
    drones: tuple[DronePlan, ...]
    cells: dict[str, CellReport]
    sweeps: dict[str, CellSweep]
    makespan_s: float  # every cell seen once (the first patrol cycle), from the first takeoff
    horizon_s: float
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    # What a live schedule needs to build further sorties without planning again (next_sortie.py).
    units: tuple = ()  # WorkUnit per cell part
    transit: TransitGraph | None = None
    overhead_s: float = 0.0  # takeoff + landing at the highest layer, as the planned sorties

    @property
    def footprint_width_m(self) -> float:
        """Across-track camera footprint: a ledger buffers flown lanes by half of it."""
        return self.config.footprint_m[0]

    @property
    def footprint_m(self) -> tuple[float, float]:
        return self.config.footprint_m

    @property
    def flyable_polygons_m(self) -> dict[str, Any]:
        """Per planned cell, what must be seen (cell minus no-fly zones), in the grid's UTM metres."""
        return {g: self.grids.flyable_m[g] for g in self.cells}

    @property
    def sorties(self) -> list[Sortie]:
        return [s for d in self.drones for s in d.sorties]

    @property
    def min_coverage(self) -> float:
        return min((c.coverage for c in self.cells.values()), default=1.0)

    def summary(self) -> dict[str, Any]:
        """What plan.json holds: per drone its sorties, totals, per-cell figures and the inputs."""
        cfg = self.config
        sorties = self.sorties
        specials = [c for c in self.cells.values() if c.kind == "special"]
        return {
            "inputs": {
                "grids": self.grids.source,
                "camera": cfg.camera.model_dump(),
                "altitude_m": cfg.coverage.altitude_m,
                "side_overlap": cfg.coverage.side_overlap,
                "footprint_m": [round(v, 2) for v in cfg.footprint_m],
                "lane_spacing_m": round(cfg.lane_spacing_m, 2),
                "endurance_min": round(cfg.fleet.endurance_min, 2),
                "pack_mah": cfg.fleet.airframe.pack_mah,
                "reserve": cfg.fleet.reserve,
                "cruise_speed_m_s": cfg.fleet.cruise_speed_m_s,
                "horizon_h": cfg.schedule.horizon_h,
                "drones": len(self.drones),
                "docks": [d.grid_id for d in self.grids.docks],
                "utm_epsg": self.grids.projector.epsg,
                "config": cfg.model_dump(),
            },
            "totals": {
                "cells": len(self.cells),
                "sorties": len(sorties),
                "distance_m": round(sum(s.distance_m for s in sorties), 1),
                "flight_s": round(sum(s.duration_s for s in sorties), 1),
                "makespan_s": round(self.makespan_s, 1),
                "horizon_s": self.horizon_s,
                "min_coverage": round(self.min_coverage, 5),
                "cells_below_min_coverage": sorted(g for g, c in self.cells.items()
                                                   if c.coverage < cfg.coverage.min_coverage),
                "special_cells_missing_revisit": sorted(c.grid_id for c in specials if not c.revisit_ok),
                "worst_special_gap_s": round(max((c.worst_gap_s for c in specials), default=0.0), 1),
                "skipped_features": [str(p) for p in self.grids.skipped],
                "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
            },
            "warnings": list(self.warnings),
            "drones": [
                {
                    "drone_id": d.drone_id,
                    "dock": d.dock_id,
                    "transit_alt_m": d.transit_alt_m,
                    "flight_s": round(d.flight_s, 1),
                    "sorties": [
                        {
                            "sortie_id": s.sortie_id,
                            "purpose": s.purpose,
                            "cycle": s.cycle,
                            "grid_ids": list(s.grid_ids),
                            "start_s": round(s.start_s, 1),
                            "duration_s": round(s.duration_s, 1),
                            "distance_m": round(s.distance_m, 1),
                            "waypoints": s.waypoint_count,
                            "files": {"plan": f"{d.drone_id}/{s.sortie_id}.plan",
                                      "waypoints": f"{d.drone_id}/{s.sortie_id}.waypoints"},
                        }
                        for s in d.sorties
                    ],
                }
                for d in self.drones
            ],
            "cells": {
                g: {
                    "kind": c.kind,
                    "coverage": round(c.coverage, 5),
                    "flyable_area_m2": round(c.flyable_area_m2, 1),
                    "sweep_heading_deg": round(c.sweep_heading_deg, 1),
                    "lanes": c.lanes,
                    "parts": c.parts,
                    "revisit_min": c.revisit_min,
                    "visits": len(c.visits_s),
                    "first_visit_s": round(c.visits_s[0], 1) if c.visits_s else None,
                    "worst_gap_s": round(c.worst_gap_s, 1) if math.isfinite(c.worst_gap_s) else None,
                    "revisit_ok": c.revisit_ok,
                }
                for g, c in self.cells.items()
            },
        }


def plan_patrol(grids: GridSet, config: PlannerConfig | None = None, cells=None,
                start_positions: Mapping[str, str | tuple[float, float]] | None = None,
                progress: Progress | None = None) -> PatrolPlan:
    """Plan the patrol of `cells` (grid_ids; default all) with the fleet of `config`.

    start_positions maps drone_id -> dock grid_id or (lat, lon) (the nearest dock is used);
    when given it is the roster, otherwise config.fleet.drones drones are spread over the docks.
    Raises PlanningError when a cell cannot be reached within one battery.
    """
    cfg = config or PlannerConfig()
    say = progress or (lambda msg: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if cells is not None:
        grids = grids.subset(cells)
    if not grids.cells:
        raise PlanningError("no cells to plan")
    roster = _roster(grids, cfg, start_positions)
    layers_needed = max(layer for _, _, layer in roster) + 1
    if layers_needed != cfg.fleet.drones:  # the roster given is the fleet: layers and timings follow it
        cfg = cfg.with_overrides(fleet={"drones": layers_needed})
    budget_s = cfg.fleet.sortie_budget_s
    speed = cfg.fleet.cruise_speed_m_s
    top_alt = max(cfg.transit_alt_m(i) for i in range(len(roster)))
    overhead_s = top_alt / cfg.fleet.climb_speed_m_s + cfg.fleet.airframe.landing_s(top_alt)
    reach_s = overhead_s + 2 * layer_change_s(cfg)  # takeoff, landing, down to and up from the cells

    # 1. Lanes.
    say(f"sweeping {len(grids.cells)} cells ...")
    graph = TransitGraph([z.polygon_m for z in grids.no_fly], cfg.coverage.no_fly_margin_m)
    for dock in grids.docks:
        if graph.has_zones and not graph.clear(dock.xy_m, (dock.xy_m[0] + 1e-3, dock.xy_m[1])):
            raise PlanningError("dock too close to a no-fly zone", [GridProblem(
                f"dock is within {cfg.coverage.no_fly_margin_m / 2:g} m of a no-fly zone", dock.index, dock.grid_id)])
    sweeps, flight_areas = sweep_grid(grids, cfg)
    timings["lanes"] = time.perf_counter() - t0

    # 2. Work units, sized so a part plus the trip from the nearest dock fits one battery.
    t = time.perf_counter()
    dock_idx = sorted({d for _, d, _ in roster})
    docks = [grids.docks[i] for i in dock_idx]
    drones_at = np.array([sum(1 for _, d, _ in roster if d == i) for i in dock_idx], float)
    dock_xy = np.array([d.xy_m for d in docks])
    units = work_units(grids, cfg, sweeps, flight_areas, graph, budget_s - overhead_s - 2 * layer_change_s(cfg),
                        dock_xy)
    timings["units"] = time.perf_counter() - t

    # 3. Units to docks.
    t = time.perf_counter()
    centres = np.array([u.centre_m for u in units])
    # Conservative: the route may enter and leave at the unit's far ends.
    dist_ud = graph.distance_matrix(centres, dock_xy) + np.array([u.radius_m for u in units])[:, None]
    need_s = reach_s + 2 * dist_ud.min(axis=1) / speed + np.array([u.work_s for u in units])
    worst: dict[str, tuple[float, float]] = {}
    for u, need, d in zip(units, need_s, dist_ud.min(axis=1)):
        if need > budget_s and need > worst.get(u.grid_id, (0.0, 0.0))[0]:
            worst[u.grid_id] = (need, d)
    if worst:
        idle = [d.grid_id for i, d in enumerate(grids.docks) if i not in dock_idx]
        hint = f" (docks without drones: {', '.join(idle)}; give them drones)" if idle else ""
        raise PlanningError(f"cells out of reach of one battery from every dock in use{hint}", [GridProblem(
            f"nearest dock is {d / 1000:.1f} km away; a round trip with its smallest part needs {need / 60:.1f} min, "
            f"a battery gives {budget_s / 60:.1f} min", grids.cell(g).index, g) for g, (need, d) in worst.items()])
    assign = assign_specials(units, dist_ud, drones_at, cfg, reach_s)
    timings["assign"] = time.perf_counter() - t

    # 4. Revisit rounds per dock (special cells, one set of rounds per revisit period), then the
    #    cycle's cells to docks by what drone-time the rounds leave, then the cycle's sorties.
    t = time.perf_counter()
    n_docks = len(docks)
    special_t: list[list[SortieRoute]] = []
    per_dock_cap = cfg.solver.time_cap_s / max(1, n_docks) if cfg.solver.use_ortools else 0.0
    swap_s = cfg.fleet.battery_swap_min * 60.0
    round_cap = per_dock_cap / 12  # rounds are small; the cycle gets most of the search time
    for k, dock in enumerate(docks):
        spec = [u for u, a in zip(units, assign) if a == k and u.special]
        special_t.append(revisit_rounds(dock, k, spec, graph, cfg, budget_s, overhead_s, round_cap, swap_s))
    special_load = np.array([sum((tp.duration_s + swap_s) / tp.period_s for tp in ts) for ts in special_t])
    horizon_s = cfg.schedule.horizon_h * 3600.0

    def first_cycle_finish(cycle_estimate: list[list[SortieRoute]]) -> np.ndarray:
        """Per dock, when its drones end the first cycle if they fly these sorties (the timeline)."""
        lines, _ = schedule_timeline(roster, dock_idx, cycle_estimate, special_t, cfg, horizon_s)
        finish = np.zeros(n_docks)
        for r, (_, di, _) in enumerate(roster):
            k = dock_idx.index(di)
            for start, tpl, cycle in lines[r]:
                if tpl.purpose == "cycle" and cycle == 1:
                    finish[k] = max(finish[k], start + tpl.duration_s)
        return finish

    assign = assign_cycle(units, assign, dist_ud, drones_at, special_load, cfg, budget_s, reach_s, dock_xy,
                          first_cycle_finish)
    cycle_t: list[list[SortieRoute]] = []
    per_dock_cap *= 0.75
    for k, dock in enumerate(docks):
        say(f"routing dock {dock.grid_id}: {int(drones_at[k])} drones ...")
        comp = [u for u, a in zip(units, assign) if a == k and not u.special]
        cycle_t.append(pack_sorties(dock, k, comp, graph, cfg, budget_s, overhead_s, per_dock_cap, "cycle"))
    timings["routing"] = time.perf_counter() - t

    # 5. Timeline.
    t = time.perf_counter()
    say("scheduling the horizon ...")
    timeline, warnings = schedule_timeline(roster, dock_idx, cycle_t, special_t, cfg, horizon_s)
    timings["schedule"] = time.perf_counter() - t

    # 6. Missions and reports.
    t = time.perf_counter()
    rally_xy = [(d.lat, d.lon) for d in grids.docks]
    drone_plans = []
    visits: dict[tuple[str, int], list[float]] = {}
    for r, (drone_id, di, layer) in enumerate(roster):
        alt = cfg.transit_alt_m(layer)
        dock = grids.docks[di]
        sorties = []
        for n, (start, tpl, cycle) in enumerate(timeline[r], start=1):
            sid = f"sortie{n:02d}"
            mission = build_mission(tpl, grids, dock, cfg, alt, rally_xy, drone_id, sid)
            parts = tuple((u.grid_id, u.part, u.parts) for u in tpl.units)
            for u, off in zip(tpl.units, tpl.visit_offsets_s):
                visits.setdefault((u.grid_id, u.part), []).append(start + off)
            sorties.append(Sortie(
                sid, drone_id, dock.grid_id, tpl.purpose, cycle, tuple(dict.fromkeys(u.grid_id for u in tpl.units)),
                parts, tuple(l for u in tpl.units for l in u.lanes), mission, tpl.points_m, tpl.distance_m,
                tpl.duration_s,  # planned with the highest layer: conservative for lower ones
                start, tuple(tpl.visit_offsets_s), alt, tpl.survey, tpl.sweep_of))
        drone_plans.append(DronePlan(drone_id, dock.grid_id, alt, tuple(sorties)))

    parts_of: dict[str, int] = {}
    for u in units:
        parts_of[u.grid_id] = u.parts
    reports: dict[str, CellReport] = {}
    first_cycle_done = 0.0
    for c in grids.cells:
        sw = sweeps[c.grid_id]
        gaps = []
        all_visits: list[float] = []
        first_seen = 0.0
        for p in range(parts_of.get(c.grid_id, 0)):
            v = sorted(visits.get((c.grid_id, p), []))
            all_visits.extend(v)
            if not v:
                gaps.append(math.inf)
                continue
            first_seen = max(first_seen, v[0])
            inside = [x for x in v if x <= horizon_s] or v[:1]
            seq = [0.0, *inside, max(horizon_s, inside[-1])]
            gaps.append(max(b - a for a, b in zip(seq[:-1], seq[1:])))
        first_cycle_done = max(first_cycle_done, first_seen)
        reports[c.grid_id] = CellReport(c.grid_id, c.kind, sw.coverage, sw.flyable_area_m2, sw.sweep_heading_deg,
                                        len(sw.lanes), parts_of.get(c.grid_id, 0), c.revisit_min,
                                        tuple(sorted(all_visits)),
                                        # A cell wholly inside a no-fly zone has nothing to see.
                                        max(gaps) if gaps else (0.0 if sw.flyable_area_m2 < 1 else math.inf))
    # Makespan: until the drone that swept the last cell of the first cycle is back on its dock.
    makespan = first_cycle_done
    for d in drone_plans:
        for s in d.sorties:
            if s.start_s <= first_cycle_done <= s.end_s:
                makespan = max(makespan, s.end_s)
    timings["missions"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    plan = PatrolPlan(cfg, grids, tuple(drone_plans), reports, sweeps, makespan, horizon_s, timings, tuple(warnings),
                      tuple(units), graph, overhead_s)
    assert_plan_safe(plan)
    return plan


def _drone_number(drone_id: str) -> int | None:
    digits = "".join(ch for ch in str(drone_id) if ch.isdigit())
    return int(digits) if digits and int(digits) > 0 else None


def _roster(grids: GridSet, cfg: PlannerConfig, start_positions) -> list[tuple[str, int, int]]:
    """[(drone_id, dock index, transit layer index)]."""
    if start_positions:
        out = []
        # A drone keeps its layer across re-plans ("drone07" -> layer 6), so a re-planned drone
        # never meets one still flying an earlier plan; other names take layers in order.
        numbered = [_drone_number(d) for d in start_positions]
        stable = all(n is not None for n in numbered) and len(set(numbered)) == len(numbered)
        for order, (drone_id, where) in enumerate(start_positions.items()):
            layer = numbered[order] - 1 if stable else order
            if isinstance(where, str):
                di = grids.docks.index(grids.dock(where))
            else:
                lat, lon = where
                x, y = grids.projector.lonlat_to_m(lon, lat)
                di = int(np.argmin([math.dist((float(x), float(y)), d.xy_m) for d in grids.docks]))
            out.append((str(drone_id), di, layer))
        return out
    n = cfg.fleet.drones
    return [(f"drone{i + 1:02d}", i % len(grids.docks), i) for i in range(n)]


def assert_plan_safe(plan: PatrolPlan) -> None:
    """The safety invariants, checked on every plan: no waypoint in, no leg across, a no-fly zone;
    every sortie within one battery. A violation is a planner bug, reported as PlanningError."""
    grids = plan.grids
    budget = plan.config.fleet.sortie_budget_s
    problems = []
    nf = grids.no_fly_union_m if grids.no_fly else None
    if nf is not None:
        shapely.prepare(nf)
    seen_templates: set[int] = set()
    for s in plan.sorties:
        if s.duration_s > budget + 1e-6:
            problems.append(GridProblem(f"{s.drone_id}/{s.sortie_id} lasts {s.duration_s / 60:.1f} min, over the "
                                        f"{budget / 60:.1f} min battery budget"))
        if nf is None or id(s.route_m) in seen_templates:
            continue
        seen_templates.add(id(s.route_m))
        pts = s.route_m
        if shapely.intersects_xy(nf, pts[:, 0], pts[:, 1]).any():
            problems.append(GridProblem(f"{s.drone_id}/{s.sortie_id} has a waypoint inside a no-fly zone"))
        legs = shapely.linestrings(np.stack([pts[:-1], pts[1:]], axis=1))
        if shapely.intersects(legs, nf).any():
            problems.append(GridProblem(f"{s.drone_id}/{s.sortie_id} has a leg crossing a no-fly zone"))
    if problems:
        raise PlanningError("plan violates a safety invariant (planner bug)", problems)
