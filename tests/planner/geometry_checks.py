"""Independent checks of a plan, from its missions (not from the planner's own figures)."""
from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import LineString

from common.values import MAV_CMD_NAV_WAYPOINT


def get_survey_legs_m(plan, sortie) -> list[LineString]:
    """Legs the mission flies at survey altitude, projected to metres."""
    alt = plan.config.coverage.altitude_m
    wps = [it for it in sortie.mission.items[1:] if it.command == MAV_CMD_NAV_WAYPOINT]
    legs = []
    for a, b in zip(wps[:-1], wps[1:]):
        if abs(a.alt_m - alt) < 1e-6 and abs(b.alt_m - alt) < 1e-6:
            xy = plan.grids.projector.lonlat_to_m([a.lon, b.lon], [a.lat, b.lat])
            legs.append(LineString(np.column_stack(xy)))
    return legs


def get_seen_area(plan, legs):
    """What a nadir camera sees along the legs: the footprint swept along each leg."""
    width_m, along_m = plan.footprint_m
    strips = []
    for leg in legs:
        if leg.length < 1e-6:
            continue
        grow = (leg.length + along_m) / leg.length
        strips.append(shapely.affinity.scale(leg, grow, grow).buffer(width_m / 2, cap_style="flat"))
    return shapely.union_all(strips)


def get_measured_coverage(plan) -> dict[str, float]:
    legs = [leg for s in plan.sorties for leg in get_survey_legs_m(plan, s)]
    seen = get_seen_area(plan, legs)
    out = {}
    for gid in plan.cells:
        flyable = plan.grids.flyable_m[gid]
        out[gid] = 1.0 if flyable.area < 1 else flyable.intersection(seen).area / flyable.area
    return out


def get_mission_path_m(plan, sortie) -> np.ndarray:
    """Every positioned item of the mission (home, takeoff, waypoints, land) in metres."""
    pts = [(it.lon, it.lat) for it in sortie.mission.items if not (it.lat == 0 and it.lon == 0)]
    x, y = plan.grids.projector.lonlat_to_m([p[0] for p in pts], [p[1] for p in pts])
    return np.column_stack([x, y])


def assert_clear_of_no_fly(plan):
    """No waypoint inside, and no straight leg across, any no-fly zone."""
    if not plan.grids.no_fly:
        return
    nf = plan.grids.no_fly_union_m
    for s in plan.sorties:
        pts = get_mission_path_m(plan, s)
        inside = shapely.intersects_xy(nf, pts[:, 0], pts[:, 1])
        assert not inside.any(), f"{s.drone_id}/{s.sortie_id}: waypoint inside a no-fly zone"
        legs = shapely.linestrings(np.stack([pts[:-1], pts[1:]], axis=1))
        assert not shapely.intersects(legs, nf).any(), f"{s.drone_id}/{s.sortie_id}: leg crosses a no-fly zone"


def assert_within_endurance(plan):
    budget = plan.config.fleet.sortie_budget_s
    for s in plan.sorties:
        assert 0 < s.duration_s <= budget, f"{s.drone_id}/{s.sortie_id}: {s.duration_s:.0f} s > {budget:.0f} s"
