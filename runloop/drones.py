"""Drone operations: fly each drone's planned sorties through flight/, hold overwatch over
incidents the dispatcher asks about, resume the patrol when the unit arrives, and after an early
return (battery, failsafe) re-plan the cells the coverage ledger says are still unseen.

Overwatch goes to the closest airborne drone with energy to spare (battery above
`overwatch.min_battery_pct`, not already holding over something else).

With a `shift:` section the patrol does not stop after the first cycle: every drone back on its
dock gets a pack swap (`common.dock_service`) and then the sortie the coverage ledger says is most
needed (`mission_planner.next_sortie`), until the run ends or the operator ends the shift. A drone
whose sorties keep failing, or that does not come home, is out of the shift; the cells it did not
see go back into the pool.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from common.dock_service import DroneState, PackPool
from common.geo import distance_m
from common.values import Incident
from runloop.clock import ScenarioClock
from runloop.coverage import CoverageLedger
from runloop.eventstore import EventStore

log = logging.getLogger(__name__)

SHARE_OVERWATCH_M = 45.0  # a drone already holding this close to a new incident watches both
ON_SCENE_M = 8.0  # a retasked drone this close to its hold point is on scene (overwatch_on_scene)
POSE_RECORD_EVERY_S = 1.0  # scenario seconds between recorded poses (map and replay)
LEDGER_EVERY_S = 0.5
VISITS_EVERY_S = 3.0  # scenario seconds between counting completed cell visits (a shift's)
SHIFT_RETRY_S = 30.0  # a ready drone nothing was stale enough for asks again this much later
LANDED_TIMEOUT_S = 600.0  # scenario seconds a drone may take to come home after a failed sortie
OPERATOR_POINT = "point "  # what a drone the operator sent to a point watches: "point LAT,LON"


@dataclass
class DroneRecord:
    drone_id: str
    vehicle: object
    dock_id: str
    sorties: list = field(default_factory=list)  # mission_planner Sortie, in flying order
    replanned: list = field(default_factory=list)  # sorties planned again during the run, as flown
    current: str = ""
    cells: tuple[str, ...] = ()
    done: int = 0
    total: int = 0
    overwatch_incident: str | None = None  # the incident it flew to hold over
    on_scene: bool = False  # reached its hold point over overwatch_incident
    watching: dict = field(default_factory=dict)  # every incident it holds over: id -> (lat, lon)
    finished: bool = False
    state: str = DroneState.READY  # flying / landing / swapping / ready / paused / lost
    queue: list = field(default_factory=list)  # planned sorties not flown yet
    failures: int = 0  # sorties in a row that failed
    paused: bool = False  # held on the dock by the operator


class DroneOps:
    def __init__(self, fleet, plan, grids, planner_config, scenario, clock: ScenarioClock, store: EventStore,
                 ledger: CoverageLedger):
        self.fleet = fleet
        self.plan = plan
        self.grids = grids
        self.planner_config = planner_config
        self.scenario = scenario
        self.clock = clock
        self.store = store
        self.ledger = ledger
        self.drones: dict[str, DroneRecord] = {}
        self.shift = scenario.shift
        self.chooser = None
        self.ending = False  # the operator ended the shift: fly home, no new sorties
        self.hot_spots: list[tuple[float, float, float]] = []  # (x_m, y_m, t_s) of incidents reported
        self.urgent: dict[str, float] = {}  # grid_id -> when the operator asked for it ("patrol these cells now")
        first = None
        if self.shift is not None:
            from mission_planner.next_sortie import SortieChooser, first_cycle

            self.chooser = SortieChooser(plan, self.shift.weights_value())
            first = first_cycle(plan)
            self.packs = {dp.dock_id: PackPool(self.shift.service_at(dp.dock_id)) for dp in plan.drones}
        for dp, v in zip(plan.drones, fleet):
            if first is not None:
                sorties = first[dp.drone_id]
            else:
                sorties = [s for s in dp.sorties if s.cycle <= 1] or list(dp.sorties[:1])
            self.drones[dp.drone_id] = DroneRecord(dp.drone_id, v, dp.dock_id, sorties, total=len(sorties))
        self._lock = asyncio.Lock()
        self.dispatcher = None  # set by the run: drone states go to its retained ≈1 Hz topic
        self.sim_vehicles: dict = {}  # drone_id -> sim.vehicles vehicle, for the battery swap
        self.battery_full_v: dict[str, float] = {}  # drone_id -> SIM_BATT_VOLTAGE before a battery fault

    # ------------------------------------------------------------------ sorties
    @property
    def all_finished(self) -> bool:
        return all(d.finished for d in self.drones.values())

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            for rec in self.drones.values():
                tg.create_task(self._fly_drone(rec, stop), name=f"fly-{rec.drone_id}")
            tg.create_task(self._watch(stop), name="drone-watch")
            tg.create_task(self._events(stop), name="drone-events")

    async def _fly_drone(self, rec: DroneRecord, stop: asyncio.Event) -> None:
        from flight import FlightError, fly_sortie

        rec.queue = list(rec.sorties)
        while not stop.is_set() and rec.state != DroneState.LOST:
            if rec.paused and not self.ending:
                rec.state = DroneState.PAUSED
                await asyncio.sleep(self.clock.wall_s(2.0))
                continue
            if rec.queue and not self.ending:
                sortie = rec.queue.pop(0)
                # Until its next planned sortie a shift drone flies a live one that is back in time.
                filler = self._choose(rec, self.clock(), until_s=sortie.start_s) if self.chooser is not None else None
                if filler is not None:
                    rec.queue.insert(0, sortie)
                    sortie = filler
                else:
                    self._note_idle(rec, self.clock(), sortie.start_s)
                    if not await self.clock.sleep_until(sortie.start_s, stop):
                        break
            elif self.chooser is not None and not self.ending:
                sortie = await self._next_shift_sortie(rec, stop)
                if sortie is None:
                    break
            else:
                break
            rec.current, rec.cells, rec.state = sortie.sortie_id, tuple(sortie.grid_ids), DroneState.FLYING
            self.store.add(self.clock(), "sortie_start", rec.drone_id, sortie=sortie.sortie_id,
                           grid_ids=list(sortie.grid_ids), purpose=sortie.purpose)
            fly = asyncio.create_task(fly_sortie(rec.vehicle, sortie.mission, progress=lambda m: log.info("%s", m)))
            stopper = asyncio.create_task(stop.wait())
            # In a shift a drone out of touch too long is out: its cells must not wait for it.
            gone = asyncio.create_task(self._link_gone(rec)) if self.chooser is not None else None
            await asyncio.wait({fly, stopper} | ({gone} if gone else set()), return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if gone is not None:
                gone.cancel()
            if not fly.done():
                fly.cancel()
                if gone is not None and gone.done() and not gone.cancelled():
                    self.store.add(self.clock(), "sortie_aborted", rec.drone_id, sortie=sortie.sortie_id,
                                   detail=gone.result())
                    self._lose(rec, gone.result(), sortie)
                break
            try:
                report = fly.result()
                rec.done += 1
                rec.failures = 0
                self.store.add(self.clock(), "sortie_done", rec.drone_id, sortie=sortie.sortie_id,
                               detail=report.summary())
            except FlightError as exc:
                seen = {g: round(self.ledger.fraction(g), 3) for g in sortie.grid_ids}
                self.store.add(self.clock(), "sortie_aborted", rec.drone_id, sortie=sortie.sortie_id, detail=str(exc),
                               seen_fraction=seen)
                rec.failures += 1
                if self.chooser is not None:
                    # The shift's ledger puts the unseen cells back into the pool by itself: they stay stale.
                    self.store.add(self.clock(), "cells_returned", rec.drone_id, sortie=sortie.sortie_id,
                                   cells=self._unvisited(sortie))
                    if rec.failures >= self.shift.lost_after_failures:
                        self._lose(rec, f"{rec.failures} sorties in a row failed (last: {exc})", sortie)
                        break
                else:
                    remaining = self.ledger.remaining(sortie.grid_ids)
                    if not remaining:
                        # Other drones' cameras (transits, overwatch) saw the rest: nothing to fly again.
                        self.store.add(self.clock(), "sortie_replanned", rec.drone_id, sortie=sortie.sortie_id,
                                       cells=[], new_sorties=[], detail="every cell of the sortie already seen")
                    elif not stop.is_set():
                        replanned = await self._replan(rec, sortie, remaining)
                        rec.queue[:0] = replanned
                        rec.replanned += replanned
            rec.current, rec.cells = "", ()
            if self.chooser is not None and not stop.is_set():
                if not await self._dock_service(rec, sortie, stop):
                    break
        rec.current, rec.cells = "", ()
        rec.finished = True

    # ------------------------------------------------------------------ the shift
    def _unvisited(self, sortie) -> list[str]:
        """Cells of a sortie with a part not visited since the sortie started."""
        last = self.ledger.last_visits()
        return sorted({g for g, p, _ in sortie.parts if last.get((g, p), -1.0) < sortie.start_s})

    async def _link_gone(self, rec: DroneRecord) -> str:
        """Returns once the drone's link has been down for the shift's `link_gone_s` (its own
        failsafe flies it home; we cannot see what it sees, nor send it anywhere)."""
        limit_s = self.shift.link_gone_s
        while True:
            s = rec.vehicle.state
            if not s.link_ok and time.monotonic() - s.last_heartbeat_s >= self.clock.wall_s(limit_s):
                return f"link lost for more than {limit_s:g} s in the air"
            await asyncio.sleep(self.clock.wall_s(1.0))

    def _lose(self, rec: DroneRecord, why: str, sortie=None) -> None:
        rec.state = DroneState.LOST
        cells = self._unvisited(sortie) if sortie is not None else []
        self.store.add(self.clock(), "drone_lost", rec.drone_id, reason=why, cells_returned=cells)
        log.warning("%s is out of the shift: %s", rec.drone_id, why)

    async def _clear_battery_fault(self, rec) -> None:
        """A pack swap ends a scripted battery fault, over the wire like it began."""
        full_v = self.battery_full_v.pop(rec.drone_id, None)
        if full_v is None:
            return
        try:
            await asyncio.wait_for(rec.vehicle.params.set("SIM_BATT_VOLTAGE", full_v), 10)
        except Exception as exc:
            self.store.add(self.clock(), "stage_error", f"drones-{rec.drone_id}",
                           error=f"battery fault not cleared after the swap: {exc or 'timed out'}")

    async def _dock_service(self, rec: DroneRecord, sortie, stop: asyncio.Event) -> bool:
        """Home, disarmed, a charged pack in: True when the drone can fly again."""
        rec.state = DroneState.LANDING
        landed = asyncio.create_task(rec.vehicle.wait_disarmed(timeout_s=self.clock.wall_s(LANDED_TIMEOUT_S)))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({landed, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not landed.done():  # the run ends: nothing to wait for
            landed.cancel()
            return False
        try:
            landed.result()
        except Exception as exc:
            self._lose(rec, f"not back on its dock: {exc or 'timed out'}", sortie)
            return False
        if not rec.vehicle.state.link_ok:
            self._lose(rec, "link lost on the dock", sortie)
            return False
        rec.state = DroneState.SWAPPING
        landed = self.clock()
        ready = self.packs[rec.dock_id].swap(landed)
        self.store.add(landed, "pack_swap", rec.drone_id, dock=rec.dock_id, ready_s=round(ready, 1))
        await self._clear_battery_fault(rec)
        sim_vehicle = self.sim_vehicles.get(rec.drone_id)
        if sim_vehicle is not None:
            # The new pack goes in when the swap starts, so its charge is in the telemetry by the
            # time the drone is ready (the pre-flight battery check reads the telemetry).
            sim_vehicle.faults.drain_battery_to(100.0)
        if not await self.clock.sleep_until(ready, stop):
            return False
        rec.state = DroneState.READY
        return True

    def claimed_cells(self, rec: DroneRecord) -> set:
        """What the other drones fly now or have planned: left to them."""
        out: set = set()
        for other in self.drones.values():
            if other is rec or other.state == DroneState.LOST:
                continue
            out.update(other.cells)
            for s in other.queue:
                out.update((g, p) for g, p, _ in s.parts)
        return out

    async def _next_shift_sortie(self, rec: DroneRecord, stop: asyncio.Event):
        """Wait (paused, or nothing stale enough) until the ledger gives this drone a sortie."""
        while not stop.is_set() and not self.ending and rec.state != DroneState.LOST:
            if rec.paused:
                rec.state = DroneState.PAUSED
                await asyncio.sleep(self.clock.wall_s(2.0))
                continue
            rec.state = DroneState.READY
            t = self.clock()
            sortie = self._choose(rec, t)
            if sortie is not None:
                return sortie
            self._note_idle(rec, t, t + SHIFT_RETRY_S)
            await self.clock.sleep_until(t + SHIFT_RETRY_S, stop)
        return None

    def _choose(self, rec: DroneRecord, t: float, until_s: float | None = None):
        """The ledger's sortie for `rec` now (back and swapped before `until_s`, if given), or None."""
        last = self.ledger.last_visits()
        for g, asked in list(self.urgent.items()):  # every part seen since the operator asked: done
            if all(last.get((u.grid_id, u.part), -1.0) > asked for u in self.chooser.units if u.grid_id == g):
                del self.urgent[g]
        budget = None if until_s is None else until_s - self.packs[rec.dock_id].service.swap_s - t
        try:
            sortie = self.chooser.next_sortie(rec.drone_id, t, last, urgent=set(self.urgent),
                                              claimed=self.claimed_cells(rec), hot_spots=self.hot_spots,
                                              dock_id=rec.dock_id, sortie_id=f"shift{len(rec.replanned) + 1:02d}",
                                              budget_s=budget)
        except Exception as exc:  # a planner bug must not ground the fleet silently
            self.store.add(t, "stage_error", f"drones-{rec.drone_id}", error=f"next sortie: {exc!r}")
            return None
        if sortie is not None:
            rec.total += 1
            rec.replanned.append(sortie)  # drawn on the live map like the re-planned ones
            self.store.add(t, "sortie_chosen", rec.drone_id, sortie=sortie.sortie_id,
                           grid_ids=list(sortie.grid_ids), duration_s=round(sortie.duration_s, 1))
        return sortie

    def _note_idle(self, rec: DroneRecord, t0_s: float, t1_s: float) -> None:
        """A drone ready on its dock is about to wait: record how much of the wait a cell nobody
        flies will be past its target (the report's idle-with-a-charged-pack figure)."""
        if self.chooser is None or t1_s <= t0_s:
            return
        idle = self.chooser.overdue_wait_s(t0_s, t1_s, self.ledger.last_visits(), self.claimed_cells(rec))
        if idle > 0:
            self.store.add(t0_s, "idle_while_overdue", rec.drone_id, seconds=round(idle, 1))

    def patrol_now(self, cells) -> None:
        t = self.clock()
        for g in cells:
            self.urgent[g] = t
        self.store.add(t, "patrol_now", "", cells=list(cells))

    def note_incident(self, lat: float, lon: float, t_s: float) -> None:
        """An incident was reported here: its neighbourhood weighs more for a while."""
        x, y = self.grids.projector.lonlat_to_m(lon, lat)
        self.hot_spots.append((float(x), float(y), t_s))

    def pause(self, drone_id: str, paused: bool) -> None:
        self.drones[drone_id].paused = paused
        self.store.add(self.clock(), "drone_paused" if paused else "drone_resumed", drone_id)

    def end_shift(self) -> None:
        """No new sorties; the sorties in the air finish and land."""
        if not self.ending:
            self.ending = True
            self.store.add(self.clock(), "shift_ending", "")

    # ------------------------------------------------------------------ the operator's hand
    def drone_in_the_air(self, drone_id: str) -> DroneRecord:
        """The drone an operator command names, if it can be flown somewhere now; OperatorError
        naming why not (lost, no link, on the ground, on its way down)."""
        from runloop.operator import OperatorError

        rec = self.drones[drone_id]
        s = rec.vehicle.state
        if rec.state == DroneState.LOST:
            raise OperatorError(f"{drone_id} is lost (out of the shift)")
        if not s.link_ok:
            raise OperatorError(f"{drone_id}: no link to the vehicle")
        if not s.armed or s.pose is None or s.pose.alt_rel_m < 5.0:
            state = rec.state if rec.state in (DroneState.SWAPPING, DroneState.PAUSED) else "on its dock"
            raise OperatorError(f"{drone_id} is on the ground ({state}): only a drone in the air can be sent")
        if s.mode in ("LAND", "RTL", "SMART_RTL") and rec.vehicle.retask.active is None:
            raise OperatorError(f"{drone_id} is on its way down ({s.mode})")
        return rec

    async def send_to(self, drone_id: str, lat: float, lon: float) -> str:
        """The operator's "send drone N there": it leaves its patrol and holds overwatch over the
        point (standoff and altitude of the scenario's overwatch, camera on the point) until the
        operator resumes or recalls it. OperatorError naming why it cannot go."""
        from runloop.operator import OperatorError

        rec = self.drone_in_the_air(drone_id)
        watched = [w for w in rec.watching if not w.startswith(OPERATOR_POINT)]
        if watched:
            raise OperatorError(f"{drone_id} holds overwatch over {', '.join(watched)}: close or dispatch that first")
        s = rec.vehicle.state
        if (s.battery_remaining_pct or 0.0) < self.scenario.overwatch.min_battery_pct:
            raise OperatorError(f"{drone_id}: battery {s.battery_remaining_pct or 0:.0f} % is below the overwatch "
                                f"minimum of {self.scenario.overwatch.min_battery_pct:.0f} %")
        ow = self.scenario.overwatch
        point = f"{OPERATOR_POINT}{lat:.6f},{lon:.6f}"
        async with self._lock:
            rec.overwatch_incident, rec.on_scene, rec.watching = point, False, {point: (lat, lon)}
        try:
            await rec.vehicle.retask.overwatch(lat, lon, standoff_m=ow.standoff_m, alt_m=ow.alt_m or self.scenario.fleet.altitude_m,
                                               wait_arrival=False)
        except Exception as exc:
            rec.overwatch_incident, rec.watching = None, {}
            self.store.add(self.clock(), "overwatch_failed", drone_id, incident_id=point, detail=str(exc))
            await self._back_to_patrol(rec, None)
            raise OperatorError(f"{drone_id} refused the point: {exc}") from None
        away_m = distance_m(s.pose.lat, s.pose.lon, lat, lon)
        self.store.add(self.clock(), "overwatch_start", drone_id, incident_id=point, kind="operator",
                       distance_m=round(away_m, 1))
        return f"{drone_id} flying to {lat:.6f},{lon:.6f} ({away_m:.0f} m) to hold over it"

    async def back_from_point(self, drone_id: str) -> bool:
        """A drone the operator sent to a point goes back to its patrol; False if it was not held there."""
        rec = self.drones[drone_id]
        if not (rec.overwatch_incident or "").startswith(OPERATOR_POINT):
            return False
        point = rec.overwatch_incident
        rec.overwatch_incident, rec.watching = None, {}
        self.store.add(self.clock(), "overwatch_end", drone_id, incident_id=point, reason="operator")
        await self._back_to_patrol(rec, None)
        return True

    async def recall(self, drone_id: str) -> str:
        """The operator's "recall drone N": home now (round the no-fly zones), then held on its
        dock until resumed. An incident it watched loses its drone (recorded)."""
        rec = self.drone_in_the_air(drone_id)
        for watched in list(rec.watching):
            self.store.add(self.clock(), "overwatch_end", drone_id, incident_id=watched, reason="recalled by the operator")
        rec.overwatch_incident, rec.watching = None, {}
        rec.vehicle.retask.active = None
        rec.paused = True
        home = asyncio.create_task(rec.vehicle.action.return_home(), name=f"recall-{drone_id}")
        home.add_done_callback(lambda t: t.cancelled() or t.exception() is None or log.warning(
            "%s: recall: %s", drone_id, t.exception()))
        # A routed return flies its legs for a while; RTL itself is acknowledged at once.
        done, _ = await asyncio.wait({home}, timeout=5.0)
        if home in done and home.exception() is not None:
            rec.paused = False
            from runloop.operator import OperatorError

            raise OperatorError(f"{drone_id} refused to return: {home.exception()}")
        self.store.add(self.clock(), "drone_recalled", drone_id)
        return f"{drone_id} flying home; it stays on its dock until resumed"

    async def _replan(self, rec: DroneRecord, sortie, remaining: list[str]) -> list:
        """The unseen cells of an aborted sortie, planned again from the drone's dock after a battery swap."""
        from mission_planner import plan_patrol

        try:
            await rec.vehicle.wait_disarmed(timeout_s=600)
        except Exception as exc:
            self.store.add(self.clock(), "stage_error", f"drones-{rec.drone_id}", error=f"not landed for re-plan: {exc}")
            return []
        try:
            plan = await asyncio.to_thread(plan_patrol, self.grids, self.planner_config, cells=remaining,
                                           start_positions={rec.drone_id: rec.dock_id})
        except Exception as exc:
            self.store.add(self.clock(), "stage_error", f"drones-{rec.drone_id}", error=f"re-plan failed: {exc}")
            return []
        swap_s = self.planner_config.fleet.battery_swap_min * 60.0
        t0 = self.clock()
        await self._clear_battery_fault(rec)
        sim_vehicle = self.sim_vehicles.get(rec.drone_id)
        if sim_vehicle is not None:
            sim_vehicle.faults.drain_battery_to(100.0)  # the swap: a fresh battery
        new = []
        for dp in plan.drones:
            for s in dp.sorties:
                if s.cycle <= 1:
                    new.append(_shifted(s, t0 + swap_s, f"{sortie.sortie_id}-replan{len(new) + 1}"))
        rec.total += len(new)
        self.store.add(t0, "sortie_replanned", rec.drone_id, sortie=sortie.sortie_id, cells=remaining,
                       new_sorties=[s.sortie_id for s in new], starts_s=round(t0 + swap_s, 1))
        return new

    # ------------------------------------------------------------------ overwatch
    def choose_overwatch_drone(self, lat: float, lon: float, exclude: frozenset[str] = frozenset()) -> DroneRecord | None:
        best, best_d = None, float("inf")
        for rec in self.drones.values():
            s = rec.vehicle.state
            if rec.drone_id in exclude or rec.overwatch_incident or not s.armed or not s.link_ok or s.pose is None or s.pose.alt_rel_m < 10:
                continue
            if s.mode != "AUTO" or s.mission_seq < 2:
                continue  # taking off, landing, RTL or already retasked: not a patrol to interrupt
            if (s.battery_remaining_pct or 0.0) < self.scenario.overwatch.min_battery_pct:
                continue
            d = distance_m(s.pose.lat, s.pose.lon, lat, lon)
            if d < best_d:
                best, best_d = rec, d
        return best

    async def overwatch(self, incident: Incident) -> None:
        """Dispatcher hook: keep the closest drone with energy to spare over the incident."""
        if incident.lat is None or incident.lon is None:
            return
        if self.chooser is not None:
            self.note_incident(incident.lat, incident.lon, self.clock())
        refused: set[str] = set()  # drones that could not take it (e.g. the point is outside their fence)
        while True:
            async with self._lock:
                if any(incident.id in r.watching for r in self.drones.values()):
                    return
                for held in self.drones.values():
                    if held.overwatch_incident and any(distance_m(lat, lon, incident.lat, incident.lon) <= SHARE_OVERWATCH_M
                                                       for lat, lon in held.watching.values()):
                        held.watching[incident.id] = (incident.lat, incident.lon)
                        self.store.add(self.clock(), "overwatch_start", held.drone_id, incident_id=incident.id,
                                       kind=str(incident.kind), shared_with=held.overwatch_incident)
                        return
                rec = self.choose_overwatch_drone(incident.lat, incident.lon, exclude=frozenset(refused))
                if rec is None:
                    self.store.add(self.clock(), "overwatch_failed", "", incident_id=incident.id,
                                   detail="no airborne drone with energy to spare"
                                          + (f" (refused by {', '.join(sorted(refused))})" if refused else ""))
                    return
                rec.overwatch_incident, rec.on_scene = incident.id, False
                rec.watching = {incident.id: (incident.lat, incident.lon)}
            ow = self.scenario.overwatch
            alt = ow.alt_m or self.scenario.fleet.altitude_m
            try:
                await rec.vehicle.retask.overwatch(incident.lat, incident.lon, standoff_m=ow.standoff_m, alt_m=alt,
                                                   wait_arrival=False)
                self.store.add(self.clock(), "overwatch_start", rec.drone_id, incident_id=incident.id,
                               kind=str(incident.kind), distance_m=round(distance_m(
                                   rec.vehicle.state.pose.lat, rec.vehicle.state.pose.lon, incident.lat, incident.lon), 1))
                return
            except Exception as exc:
                rec.overwatch_incident, rec.watching = None, {}
                self.store.add(self.clock(), "overwatch_failed", rec.drone_id, incident_id=incident.id, detail=str(exc))
                await self._back_to_patrol(rec, incident)
                refused.add(rec.drone_id)  # the next closest drone is asked

    async def _back_to_patrol(self, rec: DroneRecord, incident: Incident | None) -> None:
        """A retask that failed half way (GUIDED set, the reposition refused: outside the sortie's
        fence) must not leave the drone hovering there: it goes back to its patrol."""
        if rec.vehicle.retask.active is None or rec.vehicle.state.mode != "GUIDED":
            return
        try:
            seq = await rec.vehicle.retask.resume_patrol()
            self.store.add(self.clock(), "patrol_resumed", rec.drone_id, incident_id=incident.id if incident else "", item=seq)
        except Exception as exc:
            self.store.add(self.clock(), "overwatch_failed", rec.drone_id, incident_id=incident.id if incident else "",
                           detail=f"resume failed: {exc}")

    async def release(self, incident: Incident, reason: str) -> None:
        """Dispatcher hook: the unit arrived (or the incident closed): back to the patrol."""
        rec = next((r for r in self.drones.values() if incident.id in r.watching), None)
        if rec is None:
            return
        self.store.add(self.clock(), "overwatch_end", rec.drone_id, incident_id=incident.id, reason=reason)
        rec.watching.pop(incident.id, None)
        if rec.watching:  # still holding over another incident here
            rec.overwatch_incident = next(iter(rec.watching))
            return
        try:
            if rec.vehicle.retask.active is not None and rec.vehicle.state.mode == "GUIDED":
                seq = await rec.vehicle.retask.resume_patrol()
                self.store.add(self.clock(), "patrol_resumed", rec.drone_id, incident_id=incident.id, item=seq)
            else:
                rec.vehicle.retask.active = None
        except Exception as exc:
            self.store.add(self.clock(), "overwatch_failed", rec.drone_id, incident_id=incident.id,
                           detail=f"resume failed: {exc}")
        finally:
            rec.overwatch_incident, rec.watching = None, {}

    # ------------------------------------------------------------------ telemetry -> ledger, store
    async def _watch(self, stop: asyncio.Event) -> None:
        last_pose: dict[str, float] = {}
        last_visits = 0.0
        while not stop.is_set():
            t = self.clock()
            if self.chooser is not None and t - last_visits >= VISITS_EVERY_S:
                last_visits = t
                for g, p in self.ledger.update_visits():
                    self.store.add(t, "cell_visit", g, part=p)
            for rec in self.drones.values():
                s = rec.vehicle.state
                if s.pose is None:
                    continue
                if s.armed:
                    self.ledger.observe(s.pose, t)
                if t - last_pose.get(rec.drone_id, -1e9) >= POSE_RECORD_EVERY_S:
                    last_pose[rec.drone_id] = t
                    self._note_on_scene(rec, t)
                    self.store.add_pose(rec.drone_id, t, s.pose.lat, s.pose.lon, s.pose.alt_rel_m, s.mode,
                                        s.battery_remaining_pct, s.armed)
                    if self.dispatcher is not None:
                        self.dispatcher.update_drone_state(s.pose, mode=s.mode, battery_pct=s.battery_remaining_pct)
            await asyncio.sleep(self.clock.wall_s(LEDGER_EVERY_S))

    def _note_on_scene(self, rec: DroneRecord, t: float) -> None:
        """Record when a retasked drone reaches its hold point (the report's drone-on-scene time)."""
        ow = rec.vehicle.retask.active
        if rec.overwatch_incident is None or rec.on_scene or ow is None:
            return
        pose = rec.vehicle.state.pose
        away_m = distance_m(pose.lat, pose.lon, ow.hold_lat, ow.hold_lon)
        if away_m <= ON_SCENE_M:
            rec.on_scene = True
            self.store.add(t, "overwatch_on_scene", rec.drone_id, incident_id=rec.overwatch_incident,
                           distance_m=round(distance_m(pose.lat, pose.lon, ow.incident_lat, ow.incident_lon), 1))

    async def _events(self, stop: asyncio.Event) -> None:
        stream = self.fleet.events()
        try:
            while not stop.is_set():
                try:
                    ev = await asyncio.wait_for(stream.__anext__(), 0.5)
                except (asyncio.TimeoutError, StopAsyncIteration):
                    continue
                if ev.kind.value in ("failsafe", "low_battery", "link_lost", "link_regained", "took_off", "landed",
                                     "mode_changed", "sortie_done"):
                    self.store.add(self.clock(), "vehicle_event", ev.drone_id, event=ev.kind.value, detail=ev.detail)
        finally:
            stream.close()


def _shifted(sortie, start_s: float, sortie_id: str):
    from dataclasses import replace

    return replace(sortie, start_s=start_s, sortie_id=sortie_id)
