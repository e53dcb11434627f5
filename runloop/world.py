"""The simulated world: scenario incidents as camera actors on textured ground, and the riders.

Ground is textured (sim.camera.Scene) in a square of `camera.scene_size_m` around each incident;
elsewhere the synthetic camera has nothing to show and the drone's eyes skip rendering (keeps
3 drones' vision on 2 cores). By default (`trigger: time`, or `auto`) every incident starts at
its `at_s`: a fire ignites, a car comes to rest on its road, a crowd starts gathering, an
intruder steps into a restricted zone - whether or not a drone is near. Vision finds a standing
car by its appearance on the lanes (the eyes hand it the scenes' roads as road zones). A crowd is
found while it gathers, so by default (`auto`) it starts at `at_s` or, when later, once a drone
sweeping its cell approaches (`pass`); `time` makes it gather at at_s regardless, and `hover`
once a drone holds position nearby, so the camera sees the crowd gather or the car brake.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from common.geo import distance_m, offset
from common.values import IncidentKind
from runloop.scenario import IncidentSpec, Scenario

log = logging.getLogger(__name__)

ROAD_SPACING_M = 100.0
# How close a drone must be for a motion-found incident to begin: a crowd takes ~10 s to gather,
# so it starts as a drone approaches; a car brakes and stands within one pass of the camera.
TRIGGER_M = {IncidentKind.CROWD: 45.0, IncidentKind.STOPPED_VEHICLE: 45.0}
RENDER_MARGIN_M = 20.0  # the eyes render a scene only this far inside its edge (scene_at)
HOVER_TRIGGER_M = 60.0  # a hovering camera sees ~+-50 m across, +-29 m along at 60 m


@dataclass
class StagedIncident:
    name: str
    spec: IncidentSpec
    scene: object  # sim.camera.Scene
    started_s: float | None = None
    actor: object | None = None
    grid_id: str | None = None
    place_en: tuple[float, float] | None = None  # where in its scene (a stopped car: on a road)
    road_axis: str | None = None  # "ns" / "ew": the road a stopped car is on; None: a crossing
    _last_d: dict = field(default_factory=dict)

    @property
    def trigger(self) -> str:
        if self.spec.trigger != "auto":
            return self.spec.trigger
        # Vision finds a crowd while it gathers (people seen walking in and stopping), not one
        # already standing (docs/vision.md): by default it gathers as a drone approaches.
        return "pass" if self.spec.kind == IncidentKind.CROWD else "time"

    @property
    def lat_lon(self) -> tuple[float, float]:
        """The true position (a stopped car snapped onto its road)."""
        return self.scene.latlon(*self.place_en) if self.place_en else (self.spec.lat, self.spec.lon)


def _pt(en):
    from shapely.geometry import Point

    return Point(*en)


@dataclass
class World:
    scenario: Scenario
    incidents: list[StagedIncident] = field(default_factory=list)

    @classmethod
    def build(cls, scenario: Scenario) -> "World":
        from sim.camera import Scene

        world = cls(scenario)
        size = scenario.camera.scene_size_m
        # road_lines puts roads at -size/2 + spacing/2 + k*spacing from the origin (both axes).
        roads = [-size / 2 + ROAD_SPACING_M / 2 + k * ROAD_SPACING_M for k in range(int(size // ROAD_SPACING_M) + 1)]
        road0 = min(roads, key=abs)
        scenes: list = []
        for n, (name, spec) in enumerate(zip(scenario.incident_names(), scenario.incidents)):
            # Incidents close together share one scene, so one camera sees them together.
            host = next((sc for sc in scenes if max(map(abs, sc.en(spec.lat, spec.lon))) <= size / 2 - 60.0), None)
            inc = StagedIncident(name, spec, host)
            if host is None:
                shift_e = shift_n = 0.0
                if spec.kind == IncidentKind.STOPPED_VEHICLE and inc.trigger == "time":
                    # A car standing at its time: its own scene puts a north-south road under it,
                    # away from the junctions.
                    shift_e = -road0
                    inc.place_en, inc.road_axis = (road0, 0.0), "ns"
                elif spec.kind == IncidentKind.STOPPED_VEHICLE:
                    # A car stopping in front of a drone: a crossing under it, so it can come
                    # along the road nearest the drone's track.
                    shift_e = shift_n = -road0
                lat0, lon0 = offset(spec.lat, spec.lon, shift_n, shift_e)  # (north, east)
                inc.scene = Scene(origin_lat=lat0, origin_lon=lon0, size_m=size, seed=scenario.seed * 31 + n,
                                  road_spacing_m=ROAD_SPACING_M)
                scenes.append(inc.scene)
            elif spec.kind == IncidentKind.STOPPED_VEHICLE:
                # In a shared scene the car stops on the nearest road, as close to the given place as roads allow.
                e, n_ = inc.scene.en(spec.lat, spec.lon)
                road_e, road_n = min(roads, key=lambda r: abs(r - e)), min(roads, key=lambda r: abs(r - n_))
                if abs(road_e - e) <= abs(road_n - n_):
                    inc.place_en, inc.road_axis = (road_e, n_), "ns"
                else:
                    inc.place_en, inc.road_axis = (e, road_n), "ew"
            world.incidents.append(inc)
        zones = [tuple(tuple(v) for v in z.polygon) for z in scenario.restricted_zones]
        for sc in scenes:
            sc.restricted_zones.extend(zones)  # the camera's ground truth for intrusions
        return world

    def restricted_zones(self) -> list[list[tuple[float, float]]]:
        return [list(z.polygon) for z in self.scenario.restricted_zones]

    # ----------------------------------------------------------------- scripting
    def set_cells(self, cell_of) -> None:
        """Name each incident's grid cell (cell_of(lat, lon) -> grid_id or None)."""
        for inc in self.incidents:
            inc.grid_id = cell_of(inc.spec.lat, inc.spec.lon)

    def step(self, t_s: float, drones: list[tuple]) -> list[StagedIncident]:
        """Start the incidents whose time (and trigger) has come; returns those started now.

        drones: (drone_id, lat, lon, alt_m, heading_deg, grid_ids of the sortie it is flying). A
        motion-found incident starts when a drone sweeping its cell at survey altitude is
        approaching it within the trigger distance.
        """
        started = []
        for inc in self.incidents:
            if inc.started_s is not None or t_s < inc.spec.at_s:
                continue
            heading = 0.0
            if inc.trigger != "time":
                heading = self._triggered(inc, drones)
                if heading is None:
                    continue
            # A timed incident happens at its at_s even when this step comes a little later.
            self._start(inc, inc.spec.at_s if inc.trigger == "time" else t_s, heading)
            started.append(inc)
        return started

    def _triggered(self, inc: StagedIncident, drones) -> float | None:
        """The heading of a drone that triggers `inc` now, or None."""
        fired = None
        survey_m = self.scenario.fleet.altitude_m
        lat0, lon0 = inc.lat_lon
        for drone_id, lat, lon, alt_m, heading_deg, speed_m_s, cells in drones:
            d = distance_m(lat, lon, lat0, lon0)
            approaching = d < inc._last_d.get(drone_id, float("inf"))
            inc._last_d[drone_id] = d
            reach_m = HOVER_TRIGGER_M if inc.trigger == "hover" else TRIGGER_M[inc.spec.kind]
            if d > reach_m or abs(alt_m - survey_m) > 3.0:
                continue
            if inc.trigger == "hover" and speed_m_s < 1.0:
                fired = heading_deg
            elif inc.trigger == "pass" and approaching and (inc.grid_id is None or inc.grid_id in cells):
                fired = heading_deg
        return fired

    def _start(self, inc: StagedIncident, t_s: float, heading_deg: float = 0.0) -> None:
        from sim.camera import CarActor, FireActor

        e0, n0 = inc.place_en or inc.scene.en(inc.spec.lat, inc.spec.lon)
        if inc.spec.kind == IncidentKind.FIRE:
            actor = FireActor((e0, n0), ignite_s=inc.spec.at_s, name=inc.name)
        elif inc.spec.kind == IncidentKind.CROWD:
            actor = self._crowd(inc, (e0, n0), t_s)
        elif inc.spec.kind == IncidentKind.INTRUSION:
            actor = self._intruder(inc, (e0, n0), t_s)
        else:
            speed, run_in_m = 8.0, 25.0  # seen moving with traffic for a moment before it brakes
            # Along the road nearest the watching drone's track: the motion detector follows a car
            # crossing under a moving camera poorly (docs/vision.md), and traffic runs both ways.
            if inc.road_axis == "ns":
                heading_deg = 0.0 if math.cos(math.radians(heading_deg)) >= 0 else 180.0
            elif inc.road_axis == "ew":
                heading_deg = 90.0 if math.sin(math.radians(heading_deg)) >= 0 else 270.0
            h = math.radians(round(heading_deg / 90.0) * 90.0)
            de, dn = math.sin(h), math.cos(h)
            path = ((e0 - de * run_in_m, n0 - dn * run_in_m), (e0 + de * 80.0, n0 + dn * 80.0))
            decel = 3.0  # Mover's default braking: it halts speed^2/(2 decel) after stop_at
            stop_at = t_s + (run_in_m - speed ** 2 / (2 * decel)) / speed
            if inc.trigger == "time":
                # It drove in and came to rest exactly at at_s, watched or not.
                stop_at = t_s - speed / decel
            from sim.camera import Mover

            start = stop_at - (run_in_m - speed ** 2 / (2 * decel)) / speed
            # Blue: an orange or yellow car is taken for flames by the fire detector's colour test.
            actor = CarActor(Mover(path, speed, start_s=start, stop_at_s=stop_at), colour=(170, 80, 40), name=inc.name)
        inc.scene.actors.append(actor)
        inc.actor = actor
        inc.started_s = t_s
        log.info("incident %s (%s) starts at %.0f s", inc.name, inc.spec.kind, t_s)

    def _crowd(self, inc: StagedIncident, centre_en: tuple[float, float], t_s: float):
        from sim.camera import CrowdActor

        return CrowdActor(centre_en, n_people=7, start_s=t_s, arrive_every_s=1.0, name=inc.name, seed=self.scenario.seed)

    def _intruder(self, inc: StagedIncident, spot_en: tuple[float, float], t_s: float):
        """A person who crosses into the zone at at_s and then wanders about inside it."""
        from shapely.geometry import Polygon

        from sim.camera import Mover, PersonActor

        zone = self.scenario.zone_of(inc.spec)
        ring = Polygon([inc.scene.en(lat, lon) for lat, lon in zone.polygon])
        # Walk in from the nearest boundary point, outwards-normal: start 10 m outside it.
        edge = ring.exterior.interpolate(ring.exterior.project(_pt(spot_en)))
        de, dn = spot_en[0] - edge.x, spot_en[1] - edge.y
        d = math.hypot(de, dn) or 1.0
        de, dn = de / d, dn / d
        walk_m_s = 1.4
        start_en = (edge.x - de * 10.0, edge.y - dn * 10.0)
        # Then pace back and forth around the spot (+-4 m) for ~20 minutes: still moving when a
        # patrol drone comes by minutes later.
        side = (dn, -de)
        loiter = [(spot_en[0] + side[0] * 4 * k, spot_en[1] + side[1] * 4 * k) for k in (1, -1) * 120]
        path = (start_en, (edge.x, edge.y), spot_en, *loiter)
        start_s = t_s - 10.0 / walk_m_s  # at the boundary at at_s
        return PersonActor(Mover(path, walk_m_s, start_s=start_s), colour=(40, 40, 160), name=inc.name)

    def scene_at(self, lat: float, lon: float, margin_m: float = 0.0):
        """The textured scene under (lat, lon), or None (nothing to render there)."""
        best, best_d = None, float("inf")
        for inc in self.incidents:
            e, n = inc.scene.en(lat, lon)
            half = inc.scene.size_m / 2 - margin_m
            if abs(e) <= half and abs(n) <= half and math.hypot(e, n) < best_d:
                best, best_d = inc.scene, math.hypot(e, n)
        return best



def rider_fleet(scenario: Scenario, broker, center: tuple[float, float], state_dir, topic_prefix: str = "patrol"):
    """The scenario's simulated units, their speeds and delays scaled so they behave right in
    scenario time (they run on the wall clock; the vehicles run `speedup` times faster)."""
    from sim.riders import RiderFleet, RiderSimConfig

    s = scenario.speedup
    r = scenario.riders
    cfg = RiderSimConfig(speed_m_s=min(150.0, r.speed_m_s * s), accept_delay_s=r.accept_delay_s / s,
                         decline_rate=r.decline_rate, on_scene_s=r.on_scene_s / s,
                         location_hz=min(20.0, max(1.0, s / 2)), route=r.route,
                                                  topic_prefix=topic_prefix)
    return RiderFleet.around(broker, center, r.count, r.radius_m, state_dir, cfg, seed=scenario.seed)
