"""The scenario file (YAML): what a patrol run flies, what happens in the world, what counts as passing.

One pydantic model per section, unknown keys rejected by name. Times (`at_s`, `duration_s`) are
scenario seconds: the simulated vehicles' clock, which runs `speedup` times the wall clock.

    scenario = load_scenario("sim/scenarios/danyang-demo.yaml")
    scenario.fleet.drones, scenario.incidents[0].kind, scenario.pass_.all_incidents_alerted
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from common.airframe import AirframeProfile
from common.values import IncidentKind
from runloop.errors import RunError

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "sim" / "scenarios"
REPO_ROOT = Path(__file__).resolve().parent.parent


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FleetSection(_Section):
    """The drones: how many, where they are docked, their battery and survey altitude."""

    drones: int = Field(3, ge=1, le=12)
    airframe: AirframeProfile = Field(AirframeProfile(), title="pack, consumption, cruise speed and reserve "
                                      "(common/airframe.py): planner, flight checks and simulated packs share it")
    altitude_m: float = Field(60.0, gt=5, le=120, title="survey altitude AGL")
    dock: str | None = Field(None, title="dock grid_id all drones start from; default: spread over the docks")
    battery_pct: float = Field(100.0, gt=0, le=100, title="charge at the start of the run")
    on_stop: Literal["return", "hold"] = Field(
        "return", title="what airborne drones are told when the run stops (Ctrl-C, SIGTERM, its end): return = "
                        "home along the routed return (never across a no-fly zone); hold = hover in GUIDED where "
                        "they are for an operator to take over (a drone whose failsafe RTL from there would cross "
                        "a no-fly zone is sent home instead)")


class RidersSection(_Section):
    """Simulated motorcycle units (the sim.riders defaults, in scenario seconds)."""

    count: int = Field(4, ge=0, le=200)
    radius_m: float = Field(800.0, gt=0, title="units start on a ring this far from the patrol area")
    speed_m_s: float = Field(11.0, gt=0, le=40)
    accept_delay_s: float = Field(5.0, ge=0)
    decline_rate: float = Field(0.0, ge=0, le=1)
    on_scene_s: float = Field(60.0, ge=0)
    route: str = Field("straight", pattern="^(straight|grid)$")


class IncidentSpec(_Section):
    """One scripted incident: a camera actor at a place, from a time."""

    kind: IncidentKind
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    at_s: float = Field(0.0, ge=0, title="when it starts (fire ignites, crowd gathers, car stops)")
    name: str | None = None
    trigger: Literal["auto", "time", "pass", "hover"] = Field(
        "auto", title="time: at at_s (a fire ignites, a car stands on its road, an intruder enters, a crowd "
                      "gathers); pass: once, after at_s, a drone sweeping its cell approaches; hover: once a drone "
                      "holds position nearby (e.g. over another incident); auto: pass for crowds (vision finds "
                      "them gathering), time otherwise")

    zone: str | None = Field(None, title="intrusion: the restricted zone entered (default: the one holding lat/lon)")

    @field_validator("kind")
    @classmethod
    def _seen_kind(cls, value: IncidentKind) -> IncidentKind:
        if value == IncidentKind.REPORTED:
            raise ValueError("reported is what an alarm opens, not something a camera sees: put it under alarms:")
        return value


class AlarmSpec(_Section):
    """One scripted alarm (patrol.alarm/1 over MQTT at `at_s`): a call about something at a place."""

    at_s: float = Field(ge=0, title="when the alarm comes in")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    kind: str = Field("110-call", pattern=r"^[A-Za-z0-9_.:-]{1,32}$", title="the caller's category")
    text: str = Field("", max_length=500, title="what the caller said")
    priority: int | None = Field(None, ge=1, le=9, title="1 most urgent; default that of reported incidents")


class RestrictedZone(_Section):
    """A named no-entry area drawn on the map: (lat, lon) vertices, closed or not."""

    name: str = Field(pattern=r"^[A-Za-z0-9_. -]{1,64}$")
    polygon: list[tuple[float, float]]

    @model_validator(mode="after")
    def _polygon(self) -> "RestrictedZone":
        pts = list(self.polygon)
        if len(pts) > 1 and pts[0] == pts[-1]:
            pts = pts[:-1]  # closed ring given: drop the repeated first vertex
        if len(set(pts)) < 3:
            raise ValueError(f"restricted zone {self.name!r} needs at least 3 distinct vertices, has {len(set(pts))}")
        for lat, lon in pts:
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise ValueError(f"restricted zone {self.name!r}: vertex ({lat}, {lon}) is not a (lat, lon) pair")
        from shapely.geometry import Polygon

        if not Polygon([(lon, lat) for lat, lon in pts]).is_valid:
            raise ValueError(f"restricted zone {self.name!r} crosses itself")
        object.__setattr__(self, "polygon", pts)
        return self

    def contains(self, lat: float, lon: float) -> bool:
        from shapely.geometry import Point, Polygon

        return Polygon([(lo, la) for la, lo in self.polygon]).contains(Point(lon, lat))


class LinkCut(_Section):
    drone: int = Field(ge=1, title="1-based drone number")
    seconds: float = Field(gt=0, le=600)


class BatteryFault(_Section):
    drone: int = Field(ge=1)
    pct: float = Field(ge=0, le=100, title="sets pack voltage (SIM_BATT_VOLTAGE) for that charge level")


class FaultSpec(_Section):
    """Something going wrong at `at_s`: exactly one of link_cut, broker_restart, battery."""

    at_s: float = Field(ge=0)
    link_cut: LinkCut | None = None
    broker_restart: bool = False
    broker_down_s: float = Field(2.0, ge=0, le=120, title="how long the broker stays down (wall seconds)")
    battery: BatteryFault | None = None

    @model_validator(mode="after")
    def _one_fault(self) -> "FaultSpec":
        n = sum([self.link_cut is not None, self.broker_restart, self.battery is not None])
        if n != 1:
            raise ValueError(f"a fault at {self.at_s} s must name exactly one of link_cut, broker_restart, battery")
        return self

    @property
    def kind(self) -> str:
        return "link_cut" if self.link_cut else "broker_restart" if self.broker_restart else "battery"


class PassCriteria(_Section):
    """What the run must show to pass; each unset criterion is not checked."""

    all_incidents_detected: bool = True
    all_incidents_alerted: bool = True
    all_incidents_accepted: bool = False
    all_incidents_reached: bool = False
    no_alert_lost: bool = True
    sorties_completed: bool = False
    max_alert_latency_s: float | None = Field(None, gt=0, title="scenario seconds from detection to alert")
    max_geolocation_error_m: float | None = Field(None, gt=0)
    min_coverage_pct: float | None = Field(None, ge=0, le=100)
    max_false_alerts: int | None = Field(None, ge=0, title="incidents raised where no scripted one was under way")
    max_revisit_gap_s: RevisitGapCriteria | None = Field(None, title="shift: longest unseen stretch per grid kind")


class DockServiceSection(_Section):
    """What a dock does between two sorties of a drone (common.dock_service.DockService)."""

    swap_s: float = Field(180.0, ge=0, le=3600, title="pack out, charged pack in, checks")
    spare_packs: int | None = Field(None, ge=0, le=100, title="charged spares at the dock; default never short")
    charge_min: float = Field(60.0, gt=0, le=600, title="one pack from empty to full on the dock's charger")

    def service(self):
        from common.dock_service import DockService

        return DockService(swap_s=self.swap_s, spare_packs=self.spare_packs, charge_s=self.charge_min * 60.0)


class ShiftSection(_Section):
    """A patrol shift: after the first cycle (the plan), the coverage ledger decides what each
    drone back on its dock flies next (mission_planner.next_sortie), until the run ends."""

    revisit_s: dict[Literal["special", "comprehensive"], float] = Field(
        default_factory=dict, title="target revisit per grid kind (default: each cell's revisit_min)")
    weights: dict[Literal["special", "comprehensive"], float] = Field(
        default_factory=lambda: {"special": 4.0, "comprehensive": 1.0}, title="staleness weight per grid kind")
    cell_weights: dict[str, float] = Field(default_factory=dict, title="grid_id -> weight (wins over its kind)")
    incident_boost: float = Field(3.0, ge=1, le=100, title="weight times this near an incident reported lately")
    incident_radius_m: float = Field(400.0, ge=0, le=5000)
    incident_boost_s: float = Field(1800.0, ge=0, title="how long an incident makes its neighbourhood weigh more")
    dock_service: DockServiceSection = DockServiceSection()
    docks: dict[str, DockServiceSection] = Field(default_factory=dict, title="per dock grid_id, instead of dock_service")
    lost_after_failures: int = Field(2, ge=1, le=10, title="sorties in a row that fail before a drone is out")
    link_gone_s: float = Field(60.0, gt=0, le=3600, title="scenario s without a link in the air before a drone is out")

    @field_validator("revisit_s", "weights", "cell_weights")
    @classmethod
    def _positive(cls, value: dict) -> dict:
        bad = [k for k, v in value.items() if not v > 0]
        if bad:
            raise ValueError(f"must be > 0: {', '.join(map(str, bad))}")
        return value

    def weights_value(self):
        from mission_planner.next_sortie import ShiftWeights

        return ShiftWeights(kinds=dict(self.weights), cells=dict(self.cell_weights), revisit_s=dict(self.revisit_s),
                            incident_boost=self.incident_boost, incident_radius_m=self.incident_radius_m,
                            incident_boost_s=self.incident_boost_s)

    def service_at(self, dock_id: str):
        return self.docks.get(dock_id, self.dock_service).service()


class RevisitGapCriteria(_Section):
    special: float | None = Field(None, gt=0, title="longest a special cell may go unseen, scenario s")
    comprehensive: float | None = Field(None, gt=0, title="longest an ordinary cell may go unseen, scenario s")


class CameraSection(_Section):
    """The simulated payload camera each drone renders; low resolution keeps 3 drones on 2 cores."""

    width_px: int = Field(640, ge=160, le=1920)
    height_px: int = Field(360, ge=90, le=1080)
    hfov_deg: float = Field(82.0, gt=10, lt=170)
    fps: float = Field(5.0, gt=0, le=30, title="frames per scenario second")
    scene_size_m: float = Field(360.0, ge=100, le=1500, title="textured ground around each incident")


class OverwatchSection(_Section):
    standoff_m: float = Field(12.0, ge=0, le=200, title="hold this far from the incident (nadir camera keeps it in view)")
    alt_m: float | None = Field(None, gt=5, le=120, title="hold altitude; default the survey altitude")
    min_battery_pct: float = Field(35.0, ge=0, le=100, title="a drone with less is not sent to hold")


class Scenario(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    seed: int = 0
    grids: Path = Field(Path("mission_planner/samples/danyang_grids.geojson"))
    cells: list[str] | None = Field(None, title="grid_ids to patrol; default: the area, or every cell")
    area: tuple[float, float, float, float] | None = Field(None, title="bbox min_lon, min_lat, max_lon, max_lat")
    duration_s: float = Field(900.0, gt=0, le=48 * 3600)
    speedup: float = Field(10.0, ge=0.1, le=100)
    fleet: FleetSection = FleetSection()
    riders: RidersSection = RidersSection()
    incidents: list[IncidentSpec] = Field(default_factory=list)
    alarms: list[AlarmSpec] = Field(default_factory=list, title="alarms from outside (a 110 call) at at_s")
    restricted_zones: list[RestrictedZone] = Field(default_factory=list, title="no-entry areas every drone's eyes watch")
    faults: list[FaultSpec] = Field(default_factory=list)
    pass_: PassCriteria = Field(PassCriteria(), alias="pass")
    camera: CameraSection = CameraSection()
    overwatch: OverwatchSection = OverwatchSection()
    shift: ShiftSection | None = Field(None, title="keep patrolling until duration_s (default: one sweep)")
    vision: dict[str, Any] = Field(default_factory=dict, title="vision/ config sections (VisionConfig keys)")
    source: Path | None = Field(None, exclude=True, title="the file this was read from")

    @model_validator(mode="after")
    def _check(self) -> "Scenario":
        for f in self.faults:
            for d in (f.link_cut, f.battery):
                if d is not None and d.drone > self.fleet.drones:
                    raise ValueError(f"fault at {f.at_s} s names drone {d.drone}, the fleet has {self.fleet.drones}")
        if self.shift is not None:
            cells = set(self.cells or [])
            unknown = sorted(g for g in self.shift.cell_weights if cells and g not in cells)
            if unknown:
                raise ValueError(f"shift.cell_weights names cells the scenario does not patrol: {', '.join(unknown)}")
        for n, a in enumerate(self.alarms):
            if a.at_s > self.duration_s:
                raise ValueError(f"alarm {n + 1} at {a.at_s} s comes after the run ends ({self.duration_s} s)")
        names = [z.name for z in self.restricted_zones]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"restricted zone names must be unique: {', '.join(dup)}")
        for i in self.incidents:
            if i.at_s > self.duration_s:
                raise ValueError(f"incident {i.kind} at {i.at_s} s starts after the run ends ({self.duration_s} s)")
            if i.kind == IncidentKind.INTRUSION:
                self.zone_of(i)
            elif i.zone is not None:
                raise ValueError(f"incident {i.kind} at {i.at_s} s names zone {i.zone!r}; only intrusions enter zones")
        return self

    def zone_of(self, spec: IncidentSpec) -> RestrictedZone:
        """The restricted zone an intrusion enters (ValueError naming what is wrong)."""
        where = f"intrusion at ({spec.lat}, {spec.lon})"
        if spec.zone is not None:
            zone = next((z for z in self.restricted_zones if z.name == spec.zone), None)
            if zone is None:
                raise ValueError(f"{where} names zone {spec.zone!r}; restricted_zones has "
                                 f"{', '.join(z.name for z in self.restricted_zones) or 'none'}")
            if not zone.contains(spec.lat, spec.lon):
                raise ValueError(f"{where} is not inside restricted zone {zone.name!r}")
            return zone
        zone = next((z for z in self.restricted_zones if z.contains(spec.lat, spec.lon)), None)
        if zone is None:
            raise ValueError(f"{where} is inside no restricted zone (add one under restricted_zones:)")
        return zone

    @field_validator("vision")
    @classmethod
    def _vision_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value:
            from vision import VisionConfig

            try:
                VisionConfig.model_validate(value)
            except ValidationError as exc:
                raise ValueError("; ".join(f"{'.'.join(str(p) for p in e['loc'])}: "
                                           f"{'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}"
                                           for e in exc.errors())) from None
        return value

    def grids_path(self) -> Path:
        """The grids file: as given, else next to the scenario file, else in the repository."""
        for base in ([] if self.grids.is_absolute() else
                     [Path.cwd()] + ([self.source.parent] if self.source else []) + [REPO_ROOT]):
            candidate = base / self.grids
            if candidate.exists():
                return candidate
        if self.grids.is_absolute() and self.grids.exists():
            return self.grids
        raise RunError(f"scenario {self.name}: grids file {self.grids} not found")

    def alarm_ids(self) -> list[str]:
        """The ids the scripted alarms are sent with (source `scenario`): alarm-1, alarm-2, ..."""
        return [f"alarm-{n + 1}" for n in range(len(self.alarms))]

    def incident_names(self) -> list[str]:
        return [i.name or f"{i.kind.value}-{n + 1}" for n, i in enumerate(self.incidents)]


def _problem_text(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown key")
        else:
            lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


def parse_scenario(data: Any, source: Path | None = None) -> Scenario:
    """Validate a mapping; a RunError lists every problem, each naming its key."""
    label = str(source) if source else "scenario"
    if not isinstance(data, dict):
        raise RunError(f"{label}: top level must be a mapping (name:, fleet:, incidents: ...)")
    try:
        return Scenario.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise RunError(f"{label}: invalid scenario\n{_problem_text(exc)}") from exc


def resolve_scenario_path(name_or_path: str | Path) -> Path:
    """A path, or the name of a bundled scenario (sim/scenarios/NAME.yaml)."""
    p = Path(name_or_path)
    if p.exists():
        return p
    bundled = BUNDLED_DIR / f"{name_or_path}.yaml"
    if bundled.exists():
        return bundled
    known = ", ".join(sorted(x.stem for x in BUNDLED_DIR.glob("*.yaml")))
    raise RunError(f"scenario {name_or_path!r} is neither a file nor a bundled scenario ({known})")


def load_scenario(name_or_path: str | Path) -> Scenario:
    path = resolve_scenario_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RunError(f"cannot read scenario {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise RunError(f"cannot read scenario {path}: not UTF-8 text (byte {exc.start})") from exc
    return parse_scenario(data, path)
