"""Grid patrol planner: governance grid cells (GeoJSON) -> coverage lanes -> sorties -> missions.

Public API (pure functions over typed values; see docs/planner.md):

    grids = load_grids(path_or_dict, skip_invalid=False)      # PlanningError lists every problem
    plan = plan_patrol(grids, PlannerConfig(), cells=None, start_positions=None)
    plan.drones[i].sorties[j].mission                           # common.values.Mission
    plan.cells[grid_id].coverage / .worst_gap_s; plan.makespan_s
    plan.flyable_polygons_m, plan.footprint_width_m             # for a coverage ledger
    write_plan / read_plan (.plan), write_waypoints / read_waypoints (.waypoints)
    write_plan_dir(plan, out_dir)                                # plan.json/.geojson/.png + missions
"""
from .config import (CameraConfig, CoverageConfig, FleetConfig, GridConfig, PlannerConfig, ScheduleConfig,
                     SolverConfig)
from .errors import GridProblem, PlanningError
from .formats import read_plan, read_waypoints, write_plan, write_waypoints
from .grids import Dock, GridCell, GridSet, NoFlyZone, load_grids
from .lanes import CellSweep, CoverageLane, seen_area
from .output import write_plan_dir
from .planner import CellReport, DronePlan, PatrolPlan, Sortie, assert_plan_safe, plan_patrol
from .render import render_png

__all__ = [
    "CameraConfig", "CoverageConfig", "FleetConfig", "GridConfig", "PlannerConfig", "ScheduleConfig", "SolverConfig",
    "GridProblem", "PlanningError",
    "read_plan", "read_waypoints", "write_plan", "write_waypoints",
    "Dock", "GridCell", "GridSet", "NoFlyZone", "load_grids",
    "CellSweep", "CoverageLane", "seen_area",
    "CellReport", "DronePlan", "PatrolPlan", "Sortie", "assert_plan_safe", "plan_patrol",
    "write_plan_dir", "render_png",
]
