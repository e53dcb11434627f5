"""The live view of a run: drones (mode, battery, sortie progress, overwatch), incidents (state,
unit) and units, as one typed `LiveState` snapshot. The terminal table (`render_table`, redrawn
in place on a terminal, one table every few seconds otherwise for CI logs) and the web view
(runloop/web.py) both draw from that snapshot, so they never disagree."""
from __future__ import annotations

import asyncio
import sys
from dataclasses import asdict, dataclass

from common.values import MAV_CMD_NAV_WAYPOINT


@dataclass(frozen=True, slots=True)
class RouteLine:
    drone_id: str
    sortie_id: str
    points: tuple[tuple[float, float], ...]  # (lat, lon), dock to dock


def sortie_route(drone_id: str, sortie, dock: tuple[float, float]) -> RouteLine:
    """A sortie's line on the map: dock, its waypoints (mission_planner Sortie), dock."""
    pts = [dock]
    pts += [(it.lat, it.lon) for it in sortie.mission.items[1:]
            if it.command == MAV_CMD_NAV_WAYPOINT and (it.lat, it.lon) != (0.0, 0.0)]
    pts.append(dock)
    return RouteLine(drone_id, sortie.sortie_id, tuple((round(a, 7), round(b, 7)) for a, b in pts))


@dataclass(frozen=True, slots=True)
class DroneLive:
    drone_id: str
    mode: str
    link_ok: bool
    armed: bool
    lat: float | None  # None until the first position
    lon: float | None
    alt_rel_m: float | None
    heading_deg: float | None
    battery_pct: float | None
    sortie: str  # the sortie being flown, "" between sorties
    done: int  # sorties flown
    total: int  # sorties planned
    watching: tuple[str, ...]  # incidents it holds overwatch over
    state: str = ""  # flying / landing / swapping / ready / paused / lost (common.dock_service.DroneState)
    vision: str = ""  # its vision worker process (--vision-workers process): online / offline / LOST ...


@dataclass(frozen=True, slots=True)
class IncidentLive:
    incident_id: str
    kind: str
    status: str  # the dispatcher's status (detected, alerted, accepted, ... closed)
    unit_id: str  # "" while no unit has it
    lat: float | None  # where vision placed it
    lon: float | None


@dataclass(frozen=True, slots=True)
class UnitLive:
    unit_id: str
    status: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class ScriptedLive:
    """A scripted incident of the simulated world (its true position: the trainer's view)."""

    name: str
    kind: str
    lat: float | None
    lon: float | None
    started_s: float | None  # None: not started yet


@dataclass(frozen=True, slots=True)
class LiveState:
    t_s: float  # scenario seconds
    drones: tuple[DroneLive, ...]
    incidents: tuple[IncidentLive, ...]
    units: tuple[UnitLive, ...]
    scripted: tuple[ScriptedLive, ...] = ()
    replans: tuple[RouteLine, ...] = ()  # sorties re-planned during the run (the plan layer has the rest)

    @property
    def waiting(self) -> list[str]:
        """Scripted incidents not started yet."""
        return [s.name for s in self.scripted if s.started_s is None]

    def to_jsonable(self) -> dict:
        return asdict(self)


def _opt(value) -> float | None:
    return None if value is None else float(value)


LANDING_MODES = {"LAND", "RTL", "SMART_RTL"}


def drone_state(rec) -> str:
    """What the drone is doing in its sortie / dock cycle (the vehicle's own state wins in the air)."""
    state = str(getattr(rec, "state", "") or "")
    if state in ("lost", "paused", "swapping"):
        return state
    if getattr(rec.vehicle.state, "armed", False):
        return "landing" if rec.vehicle.state.mode in LANDING_MODES else "flying"
    return "ready" if state in ("flying", "landing", "") else state


def live_state(t_s: float, drones, recorder, world, vision: dict[str, str] | None = None) -> LiveState:
    """The snapshot of a run's drones (runloop.drones.DroneOps), what the recorder heard from the
    broker (incidents, unit positions) and the scripted world; vision: drone -> how its vision
    worker process is (only with --vision-workers process)."""
    drone_rows = []
    for rec in drones.drones.values():
        s = rec.vehicle.state
        pose = s.pose
        watching = tuple(getattr(rec, "watching", None) or ())
        if not watching and rec.overwatch_incident:
            watching = (rec.overwatch_incident,)
        drone_rows.append(DroneLive(
            drone_id=rec.drone_id, mode=s.mode, link_ok=bool(s.link_ok), armed=bool(getattr(s, "armed", False)),
            lat=pose.lat if pose else None, lon=pose.lon if pose else None,
            alt_rel_m=pose.alt_rel_m if pose else None, heading_deg=pose.heading_deg if pose else None,
            battery_pct=_opt(s.battery_remaining_pct), sortie=rec.current or "", done=rec.done, total=rec.total,
            watching=watching, state=drone_state(rec), vision=(vision or {}).get(rec.drone_id, "")))
    incident_rows = []
    for iid, rec in sorted(recorder.incidents.items()):
        inc = rec.get("incident") or {}
        incident_rows.append(IncidentLive(iid, inc.get("kind", ""), rec.get("status", ""), rec.get("unit_id") or "",
                                          _opt(inc.get("lat")), _opt(inc.get("lon"))))
    unit_rows = tuple(UnitLive(unit, status, lat, lon)
                      for unit, (lat, lon, status) in sorted(recorder.unit_positions.items())
                      if lat is not None and lon is not None)
    scripted = []
    for inc in world.incidents:
        lat_lon = getattr(inc, "lat_lon", None)
        spec = getattr(inc, "spec", None)
        scripted.append(ScriptedLive(inc.name, str(getattr(spec, "kind", "")) if spec else "",
                                     lat_lon[0] if lat_lon else None, lat_lon[1] if lat_lon else None, inc.started_s))
    replans = tuple(sortie_route(rec.drone_id, s, (s.mission.items[0].lat, s.mission.items[0].lon))
                    for rec in drones.drones.values() for s in getattr(rec, "replanned", ()))
    return LiveState(float(t_s), tuple(drone_rows), tuple(incident_rows), unit_rows, tuple(scripted), replans)


def format_table(state: LiveState) -> str:
    lines = [f"patrol  t={state.t_s:7.1f} s"]
    lines.append(f"{'drone':<9}{'mode':<9}{'state':<10}{'alt m':>7}{'batt %':>8}  {'sortie':<12}{'done':>6}  overwatch")
    for d in state.drones:
        alt = f"{d.alt_rel_m:.0f}" if d.alt_rel_m is not None else "-"
        batt = f"{d.battery_pct:.0f}" if d.battery_pct is not None else "-"
        mode = d.mode + ("" if d.link_ok else "!")
        lines.append(f"{d.drone_id:<9}{mode:<9}{d.state or '-':<10}{alt:>7}{batt:>8}  {d.sortie or '-':<12}"
                     f"{d.done}/{d.total:<4}  {', '.join(d.watching)}")
    workers = [f"{d.drone_id} {d.vision}" for d in state.drones if d.vision]
    if workers:
        lines.append("vision workers: " + "; ".join(workers))
    lines.append(f"{'incident':<28}{'kind':<17}{'status':<12}unit")
    for i in state.incidents:
        lines.append(f"{i.incident_id:<28}{i.kind:<17}{i.status:<12}{i.unit_id}")
    if state.waiting:
        lines.append(f"(scripted, not started yet: {', '.join(state.waiting)})")
    lines.append(f"{'unit':<8}{'status':<12}position")
    for u in state.units:
        lines.append(f"{u.unit_id:<8}{u.status:<12}{u.lat:.5f},{u.lon:.5f}")
    return "\n".join(lines)


def render_table(t_s: float, drones, recorder, world, vision: dict[str, str] | None = None) -> str:
    return format_table(live_state(t_s, drones, recorder, world, vision))


async def live_table(stop: asyncio.Event, clock, drones, recorder, world, stream=None, every_wall_s: float = 1.0,
                     vision=None) -> None:
    """vision: () -> {drone: its vision worker's state}, or None (in-process eyes)."""
    out = stream or sys.stderr
    tty = out.isatty()
    last_lines = 0
    n = 0
    while not stop.is_set():
        text = render_table(clock(), drones, recorder, world, vision() if vision else None)
        if tty:
            if last_lines:
                out.write(f"\x1b[{last_lines}F\x1b[J")
            out.write(text + "\n")
            last_lines = text.count("\n") + 1
        elif n % 10 == 0:
            out.write(text + "\n\n")
        out.flush()
        n += 1
        try:
            await asyncio.wait_for(stop.wait(), every_wall_s)
        except asyncio.TimeoutError:
            pass
