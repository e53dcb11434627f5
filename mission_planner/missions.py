"""Sorties -> MAVLink missions (common.values.Mission): items, geofence and rally points."""
from __future__ import annotations

import numpy as np
import shapely

from common.values import (MAV_CMD_DO_CHANGE_SPEED, MAV_CMD_NAV_LAND, MAV_CMD_NAV_TAKEOFF, MAV_CMD_NAV_WAYPOINT,
                           MAV_FRAME_GLOBAL, FenceZone, Mission, MissionItem, RallyPoint)

from .config import PlannerConfig
from .errors import PlanningError
from .grids import Dock, GridSet
from .sorties import SortieRoute


# ArduCopter stores at most 84 fence items (SITL's storage; boards with less refuse more with
# MISSION_ACK NO_SPACE), so each sortie carries only the fence that matters to its own route.
MAX_FENCE_ITEMS = 84


def sortie_fence(grids: GridSet, points_m: np.ndarray, margin_m: float = 300.0) -> tuple[FenceZone, ...]:
    """Inclusion: the sortie's route hull + margin_m; exclusions: the no-fly zones that touch it.

    A fence for the whole city would not fit a vehicle's fence storage, and a drone has no
    business outside its own sortie's area anyway.
    """
    hull = shapely.convex_hull(shapely.multipoints(points_m))
    area = hull.buffer(margin_m, quad_segs=2)
    exclusions = []
    for z in grids.no_fly:
        if not z.polygon_m.intersects(area):
            continue
        for part in shapely.get_parts(z.polygon_wgs84):
            ring = np.asarray(part.exterior.coords)[:-1]
            exclusions.append(FenceZone(False, tuple((round(float(lat), 8), round(float(lon), 8)) for lon, lat in ring)))
    budget = MAX_FENCE_ITEMS - sum(len(z.vertices) for z in exclusions)
    # Simplifying a convex ring only cuts corners inwards, by at most the tolerance: keep it under
    # half the margin so the route stays well inside.
    ring = area
    for tol in (20.0, 50.0, 100.0, margin_m / 2):
        ring = area.simplify(tol)
        if len(ring.exterior.coords) - 1 <= budget:
            break
    if len(ring.exterior.coords) - 1 > budget:
        raise PlanningError(f"sortie fence needs {len(ring.exterior.coords) - 1 + MAX_FENCE_ITEMS - budget} items, "
                            f"more than the {MAX_FENCE_ITEMS} a vehicle stores: too many no-fly vertices nearby")
    return (FenceZone(True, _ring_latlon(grids, np.asarray(ring.exterior.coords)[:-1])), *exclusions)


def _ring_latlon(grids: GridSet, xy: np.ndarray) -> tuple[tuple[float, float], ...]:
    ll = grids.projector.latlon_of(xy)
    return tuple((round(float(a), 8), round(float(b), 8)) for a, b in ll)


def build_mission(tpl: SortieRoute, grids: GridSet, dock: Dock, cfg: PlannerConfig, transit_alt_m: float,
                  rally_xy, drone_id: str, sortie_id: str) -> Mission:
    """home, takeoff to the drone's layer, speed, route (lanes at survey altitude), over the dock, LAND.

    We land with NAV_LAND over the dock rather than RTL: RTL climbs to the vehicle's RTL_ALT,
    shared by every drone, which would break the one-layer-per-drone separation.
    """
    ll = grids.projector.latlon_of(tpl.points_m)
    lat0, lon0 = round(dock.lat, 8), round(dock.lon, 8)
    items = [
        MissionItem(MAV_CMD_NAV_WAYPOINT, lat0, lon0, 0.0, frame=MAV_FRAME_GLOBAL),
        MissionItem(MAV_CMD_NAV_TAKEOFF, lat0, lon0, transit_alt_m),
        MissionItem(MAV_CMD_DO_CHANGE_SPEED, 0.0, 0.0, 0.0, param1=1.0, param2=cfg.fleet.cruise_speed_m_s, param3=-1.0),
    ]
    survey_alt = cfg.coverage.altitude_m
    for (lat, lon), s in zip(ll[1:-1], tpl.survey[1:-1]):
        items.append(MissionItem(MAV_CMD_NAV_WAYPOINT, round(float(lat), 8), round(float(lon), 8),
                                 survey_alt if s else transit_alt_m))
    items.append(MissionItem(MAV_CMD_NAV_WAYPOINT, lat0, lon0, transit_alt_m))
    items.append(MissionItem(MAV_CMD_NAV_LAND, lat0, lon0, 0.0))
    fence = sortie_fence(grids, tpl.points_m)
    rally = tuple(RallyPoint(round(a, 8), round(b, 8), transit_alt_m) for a, b in rally_xy)
    return Mission(tuple(items), fence, rally, name=f"{drone_id}/{sortie_id}", drone_id=drone_id,
                   grid_ids=tuple(dict.fromkeys(u.grid_id for u in tpl.units)))
