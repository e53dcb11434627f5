"""The stages of one patrol run, started in order by `patrol.run_patrol` and stopped in reverse.

Each `init_*` / `start_*` method sets up one part and records it; `shutdown()` undoes what was
started, newest first; `write_report()` builds the after-action report from the event store.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from pydantic import SecretStr

from common.geo import outer_rings_latlon
from common.values import CameraModel
from runloop.clock import ScenarioClock
from runloop.coverage import CoverageLedger
from runloop.errors import RunError
from runloop.eventstore import EventStore
from runloop.scenario import Scenario

log = logging.getLogger(__name__)

GROUND_MSL_M = 10.0
FINISH_GRACE_S = 5.0  # scenario seconds everything must stay done before the run ends early
BATTERY_FAULT_TIMEOUT_S = 10.0
LEAVE_SAFE_TIMEOUT_S = 600.0  # wall seconds the routed returns at shutdown may take before the links close
# A battery fault "drained to pct" is the resting voltage of a LiPo pack at that charge, linear per
# cell from 3.3 V (empty) to 4.2 V (full): 20 % of a 3S pack is 10.44 V, below ArduCopter's
# default BATT_LOW_VOLT 10.5, so the vehicle's own low-battery failsafe acts.
CELL_EMPTY_V = 3.3
CELL_FULL_V = 4.2


class PatrolRun:
    def __init__(self, scenario: Scenario, out: Path):
        self.scenario = scenario
        self.out = Path(out)
        self.started_wall = time.time()
        self._undo: list[tuple[str, object]] = []
        self.clock = ScenarioClock(scenario.speedup)
        self.sim = None
        self.embedded = None
        self.broker_restart = None
        self.relays: dict = {}  # drone_id -> LinkRelay
        self.video: dict[str, str] = {}  # drone_id -> its real video source (--video)
        self.vision_workers = "in-process"  # or "process": one `patrol watch` process per drone (--vision-workers)
        self.alarms_pending = len(scenario.alarms)  # scripted alarms not sent yet
        self.worker_logins: dict[str, tuple[str, str]] = {}  # drone_id -> its vision worker's (user, password)

    # ------------------------------------------------------------------ start-up stages
    def init_store(self) -> None:
        for stale in ("events.sqlite", "events.sqlite-wal", "events.sqlite-shm", "dispatch-journal.sqlite"):
            (self.out / stale).unlink(missing_ok=True)
        self.store = EventStore(self.out)
        self._undo.append(("store", self.store.close))
        sc = self.scenario
        data = sc.model_dump(mode="json", by_alias=True)
        data["incident_names"] = sc.incident_names()
        self.store.set_meta("scenario", data)

    def init_plan(self) -> None:
        from mission_planner import PlanningError

        try:
            self._plan()
        except PlanningError as exc:
            raise RunError(f"scenario {self.scenario.name}: cannot plan the patrol: {exc}") from exc

    def _plan(self) -> None:
        from mission_planner import PlannerConfig, load_grids, plan_patrol

        sc = self.scenario
        self.grids = load_grids(sc.grids_path())
        cells = sc.cells
        if cells is None and sc.area is not None:
            min_lon, min_lat, max_lon, max_lat = sc.area
            cells = [c.grid_id for c in self.grids.cells
                     if min_lon <= c.polygon_wgs84.representative_point().x <= max_lon
                     and min_lat <= c.polygon_wgs84.representative_point().y <= max_lat]
            if not cells:
                raise RunError(f"scenario {sc.name}: no cell inside the area {sc.area}")
        dock = sc.fleet.dock or self.grids.docks[0].grid_id
        self.dock = self.grids.dock(dock)
        fleet = {"drones": sc.fleet.drones, "airframe": sc.fleet.airframe.model_dump(), "launch_stagger_s": 20.0}
        if sc.shift is not None:  # the plan's take-off times follow the dock's own swap, so no charged drone waits
            fleet["battery_swap_min"] = sc.shift.service_at(dock).swap_s / 60.0
        self.planner_config = PlannerConfig().with_overrides(
            fleet=fleet,
            coverage={"altitude_m": sc.fleet.altitude_m},
            schedule={"horizon_h": max(0.05, sc.duration_s / 3600.0)})
        roster = {f"drone{i + 1:02d}": dock for i in range(sc.fleet.drones)}
        t0 = time.perf_counter()
        self.plan = plan_patrol(self.grids, self.planner_config, cells=cells, start_positions=roster)
        planned = sorted(self.plan.cells)
        self.store.set_meta("plan", {"cells": planned, "makespan_s": self.plan.makespan_s,
                                     "sorties": [[s.drone_id, s.sortie_id, list(s.grid_ids), s.start_s, s.duration_s]
                                                 for s in self.plan.sorties],
                                     "planning_s": round(time.perf_counter() - t0, 3)})
        if sc.shift is not None:  # what the shift report measures each cell's gaps against
            self.store.set_meta("cell_targets", {g: {"kind": self.grids.cell(g).kind, "revisit_s": sc.shift.revisit_s.get(
                self.grids.cell(g).kind, self.grids.cell(g).revisit_min * 60.0)} for g in planned})
        self.store.set_meta("cells_geo", {g: outer_rings_latlon(self.grids.cell(g).polygon_wgs84) for g in planned})
        self.store.set_meta("docks", [{"grid_id": d.grid_id, "lat": d.lat, "lon": d.lon} for d in self.grids.docks
                                      if d.grid_id == dock])
        print(f"planned {len(planned)} cells into {len(self.plan.sorties)} sorties for {sc.fleet.drones} drones "
              f"from {dock}", flush=True)

    async def start_broker(self, url: str | None, restart, protocol: str | None) -> None:
        from dispatch.config import BrokerConfig

        if url is None:
            from dispatch.embedded import EmbeddedBroker

            self.embedded = EmbeddedBroker()
            await self.embedded.start()
            self._undo.append(("broker", self.embedded.stop))
            self.broker = self.embedded.client_config()

            async def restart_embedded(down_s: float) -> None:
                await self.embedded.stop()
                await asyncio.sleep(down_s)
                await self.embedded.start()
            self.broker_restart = restart_embedded
        else:
            self.broker = BrokerConfig(url=url, protocol=protocol or "5")
            self.broker_restart = restart
        self.store.set_meta("broker", {"url": self.broker.url, "embedded": self.embedded is not None})

    async def start_vehicles(self, sitl: bool = False, connect_base: str | None = None) -> None:
        """The built-in simulator (default), real ArduCopter SITL, or vehicles already running."""
        sc = self.scenario
        if connect_base:
            from flight.fleet import fleet_urls

            self.urls = [str(u) for u in fleet_urls(connect_base, sc.fleet.drones)]
            self.store.set_meta("vehicles", {"kind": "connect", "urls": self.urls})
            return
        if sitl:
            from sim import SimError
            from sim.sitl import SitlFleet

            try:
                self.sitl = SitlFleet(count=sc.fleet.drones, home=(self.dock.lat, self.dock.lon, GROUND_MSL_M),
                                      speedup=sc.speedup, base_port=_free_port_block(sc.fleet.drones))
                await self.sitl.start()
            except SimError as exc:
                raise RunError(f"cannot start ArduCopter SITL: {exc}") from exc
            self._undo.append(("sitl", self.sitl.stop))
            self.urls = [inst.url for inst in self.sitl.instances]
            self.store.set_meta("vehicles", {"kind": "sitl", "urls": self.urls})
            return
        from sim.vehicles import SimulatedFleet

        port = _free_port_block(sc.fleet.drones)
        # The simulated drones carry and draw what the scenario's airframe profile says.
        self.sim = SimulatedFleet(count=sc.fleet.drones, base_port=port, home=(self.dock.lat, self.dock.lon, GROUND_MSL_M),
                                  speedup=sc.speedup, fast_start=True, seed=sc.seed, airframe=sc.fleet.airframe,
                                  battery_mah=sc.fleet.airframe.pack_mah,
                                  # Dijkstra object avoidance already on, as on our field airframes:
                                  # turning it on at the first fence upload would cost every drone a reboot.
                                  params={"OA_TYPE": 2})
        await self.sim.start()
        self._undo.append(("vehicles", self.sim.stop))
        if sc.fleet.battery_pct < 100:
            for v in self.sim:
                v.faults.drain_battery_to(sc.fleet.battery_pct)
        self.clock = ScenarioClock(sc.speedup, self.sim.clock)
        self.urls = self.sim.urls

    async def connect_fleet(self) -> None:
        from flight import Fleet, FlightConfig

        ids = [d.drone_id for d in self.plan.drones]
        urls = [await self._relay(drone_id, url) for drone_id, url in zip(ids, self.urls[:len(ids)], strict=True)]
        self.fleet = Fleet.from_urls(urls, config=FlightConfig.for_speedup(self.scenario.speedup,
                                                                           airframe=self.scenario.fleet.airframe),
                                     drone_ids=ids)
        await self.fleet.connect()
        self._undo.append(("fleet", self.fleet.close))
        # undone first: airborne drones are sent home (or told to hold) while the links still work
        self._undo.append(("fleet-home", self.leave_drones_safe))
        await asyncio.gather(*(v.wait_armable(timeout_s=60) for v in self.fleet))

    async def _relay(self, drone_id: str, url: str) -> str:
        """Every drone's link goes through a relay we can cut (one path for every vehicle kind);
        a link that cannot be relayed (serial) is used directly and its link cuts are refused."""
        from runloop.linkrelay import LinkRelay

        try:
            relay = LinkRelay(url, drone_id=drone_id, clock=self.clock)
            relay_url = await relay.start()
        except RunError as exc:
            self.store.add(self.clock(), "note", "link_relay", drone=drone_id, detail=str(exc))
            return url
        self.relays[drone_id] = relay
        self._undo.append((f"relay-{drone_id}", relay.stop))
        return relay_url

    def init_world(self) -> None:
        from runloop.drones import DroneOps
        from runloop.world import World

        sc = self.scenario
        self.camera = CameraModel(sc.camera.width_px, sc.camera.height_px, sc.camera.hfov_deg)
        self.world = World.build(sc)
        self.world.set_cells(self._cell_of)
        self.ledger = CoverageLedger(self.plan.flyable_polygons_m, self.grids.projector, self.camera,
                                     parts_m=shift_parts_m(self.plan) if sc.shift is not None else None)
        self.drones = DroneOps(self.fleet, self.plan, self.grids, self.planner_config, sc, self.clock, self.store,
                               self.ledger)
        if self.sim is not None:
            self.drones.sim_vehicles = {d.drone_id: self.sim[i] for i, d in enumerate(self.plan.drones)}

    def init_dispatcher(self) -> None:
        from dispatch import Dispatcher
        from dispatch.config import DispatchConfig
        from runloop.recorder import Recorder

        s = self.scenario.speedup
        # The dispatcher runs on the wall clock; its timers are scaled so they mean scenario seconds,
        # but never so short that a broker round trip counts as a silent unit.
        cfg = DispatchConfig(journal_path=self.out / "dispatch-journal.sqlite", ack_timeout_s=max(5.0, 60.0 / s),
                             unit_silence_s=max(10.0, 120.0 / s), escalation_retry_s=max(3.0, 30.0 / s),
                             typical_speed_m_s=min(60.0, 8.0 * s), drone_state_interval_s=max(0.2, 1.0 / s),
                             status_interval_s=2.0, drones=tuple(d.drone_id for d in self.plan.drones))
        self.dispatcher = Dispatcher(self.broker, cfg, on_overwatch_needed=self.drones.overwatch,
                                     on_release=self.drones.release)
        self.dispatcher.locate_grid = self._grid_centre  # alarms may name a cell instead of a position
        self.drones.dispatcher = self.dispatcher
        self.recorder = Recorder(self.broker, self.store, self.clock)

    def init_operator(self) -> None:
        """Operator commands over MQTT (runloop/operator.py): patrol cells now, pause/resume, end shift,
        send/recall a drone, dispatch a unit, close an incident as a false alarm."""
        from runloop.operator import OperatorControl

        self.operator = OperatorControl(self.broker, self.drones, self.store, self.clock, dispatcher=self.dispatcher)

    async def wait_dispatcher_connected(self, timeout_s: float = 20.0) -> None:
        try:
            await self.dispatcher.session.wait_connected(timeout_s)
        except Exception as exc:
            raise RunError(f"the dispatcher could not connect to {self.broker.url}: {exc}") from exc

    async def start_publisher(self) -> None:
        from dispatch import DetectionPublisher

        self.publisher = DetectionPublisher(self.broker, client_id="patrol-run-vision")
        await self.publisher.__aenter__()
        self._undo.append(("publisher", self.publisher.close))

    def init_riders(self) -> None:
        from runloop.recorder import record_rider_receipts
        from runloop.world import rider_fleet

        state_dir = self.out / "riders"
        if state_dir.exists():
            for f in state_dir.glob("*.sqlite*"):
                f.unlink()
        state_dir.mkdir(exist_ok=True)
        self.riders = rider_fleet(self.scenario, self.broker, (self.dock.lat, self.dock.lon), state_dir)
        record_rider_receipts(self.riders, self.store, self.clock)

    def set_video(self, video: dict[str, str] | None) -> None:
        """`--video DRONE=SOURCE`: check each names a drone of the plan and, for a recording, a
        file that opens - before anything flies. Streams may come up later (the eyes retry)."""
        from vision import VisionError
        from vision.sources import FileSource, is_stream, open_source

        ids = [d.drone_id for d in self.plan.drones]
        self.video = {}
        for key, source in (video or {}).items():
            drone_id = key if key in ids else (self._drone_id(int(key)) if key.isdigit() else None)
            if drone_id is None:
                raise RunError(f"--video {key}={source}: no such drone (this patrol flies {', '.join(ids)})")
            if drone_id in self.video:
                raise RunError(f"--video: two sources for {drone_id}")
            if not is_stream(source):
                try:
                    opened = open_source(source)
                except VisionError as exc:
                    raise RunError(f"--video {key}={source}: {exc}") from exc
                if isinstance(opened, FileSource):
                    opened.close()
            self.video[drone_id] = source
        if self.video:
            self.store.set_meta("video", self.video)

    def set_vision_workers(self, mode: str, logins: Path | None = None, broker_url: str | None = None) -> None:
        """`--vision-workers process`: each drone's video watched by its own worker process. Only
        for real video at speedup 1, checked before anything flies. On a broker with logins each
        worker logs in as its drone (`drone-<id>`, from `--worker-logins`, patrol broker-config's
        credentials.yaml), never as the controller."""
        from dispatch.config import BrokerConfig

        if mode not in ("in-process", "process"):
            raise RunError(f"--vision-workers {mode!r}: use in-process or process")
        if logins is not None and mode != "process":
            raise RunError("--worker-logins is for --vision-workers process")
        if mode == "process":
            synthetic = [d.drone_id for d in self.plan.drones if d.drone_id not in self.video]
            if synthetic:
                raise RunError(
                    f"--vision-workers process: {', '.join(synthetic)} would be watched by the synthetic camera, "
                    "whose world exists only inside this run, on its scenario clock; a separate process cannot "
                    f"see it. Give each drone its real video (--video {synthetic[0]}=SOURCE) or leave "
                    "--vision-workers in-process")
            if self.scenario.speedup != 1:
                raise RunError(
                    f"--vision-workers process: this run is at speedup {self.scenario.speedup:g}; a worker process "
                    "watches its video on the wall clock, so its frames and the drones' poses would disagree. "
                    "Run at --speedup 1 or leave --vision-workers in-process")
            if logins is not None:
                self.worker_logins = _worker_logins(logins, self.video)
            elif broker_url and BrokerConfig(url=broker_url).username:
                raise RunError("--vision-workers process: the broker takes logins; give --worker-logins "
                               "CREDENTIALS.yaml (from patrol broker-config) so that each worker logs in as its "
                               "drone (drone-<id>), not with the controller's login, or leave --vision-workers in-process")
        self.vision_workers = mode
        self.store.set_meta("vision_workers", mode)

    def init_eyes(self) -> None:
        from runloop.eyes import DroneEyes, VideoEyes, WorkerProcessEyes
        from vision import IncidentRegistry, VisionConfig

        vcfg = VisionConfig.model_validate(self.scenario.vision)
        registry = IncidentRegistry(vcfg.incidents, id_prefix="inc")  # shared: two drones, one incident
        self.eyes = []
        for i, rec in enumerate(self.drones.drones.values()):
            args = (self.world, self.clock, self.store, self.publisher, self.camera, self.scenario.camera.fps, vcfg,
                    registry)
            kwargs = {"cell_lookup": self._cell_of, "seed": self.scenario.seed + i}
            if self.vision_workers == "process":
                login = self.worker_logins.get(rec.drone_id)
                worker_broker = (self.broker.model_copy(update={"username": login[0], "password": SecretStr(login[1])})
                                 if login else None)
                eyes = WorkerProcessEyes(rec.drone_id, rec.vehicle, self.video[rec.drone_id], self.broker, vcfg,
                                         self.camera, self.clock, self.store, self.out,
                                         topic_prefix=self.dispatcher.topics.prefix, worker_broker=worker_broker,
                                         zones=self.world.restricted_zones())
                self._undo.append((f"vision-worker-{rec.drone_id}", eyes.end))  # no orphan, whatever ends the run
                self.eyes.append(eyes)
            elif rec.drone_id in self.video:
                self.eyes.append(VideoEyes(rec.drone_id, rec.vehicle, self.video[rec.drone_id], *args, **kwargs))
            else:
                self.eyes.append(DroneEyes(rec.drone_id, rec.vehicle, *args, **kwargs,
                                           sim_clock=self.sim.clock if self.sim else None))
        self.store.set_meta("run", {"started_wall": self.started_wall, "speedup": self.scenario.speedup})

    def _grid_centre(self, grid_id: str) -> tuple[float, float] | None:
        try:
            p = self.grids.cell(grid_id).polygon_wgs84.representative_point()
        except Exception:  # PlanningError: not a cell of this map
            return None
        return p.y, p.x

    def _cell_of(self, lat: float, lon: float) -> str | None:
        from shapely.geometry import Point

        x, y = self.grids.projector.lonlat_to_m(lon, lat)
        p = Point(float(x), float(y))
        for g, poly in self.plan.flyable_polygons_m.items():
            if poly.contains(p):
                return g
        return None

    # ------------------------------------------------------------------ running tasks
    async def script_world(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            t = self.clock()
            drones = [(r.drone_id, r.vehicle.state.pose.lat, r.vehicle.state.pose.lon, r.vehicle.state.pose.alt_rel_m,
                       r.vehicle.state.pose.heading_deg, r.vehicle.state.pose.groundspeed_m_s, r.cells)
                      for r in self.drones.drones.values() if r.vehicle.state.pose is not None and r.vehicle.state.armed]
            for inc in self.world.step(t, drones):
                lat, lon = inc.lat_lon
                # started_s: when it really began (a timed one at its at_s, before this step).
                self.store.add(t, "incident_start", inc.name, kind=str(inc.spec.kind), lat=lat, lon=lon,
                               started_s=inc.started_s)
            await asyncio.sleep(self.clock.wall_s(0.5))

    async def script_alarms(self, stop: asyncio.Event) -> None:
        """Send the scenario's alarms at their times over MQTT (patrol/alarms/scenario), the way a
        call centre does; each is recorded as `alarm_sent` (its id in the dispatcher is
        scenario.alarm-N)."""
        from dispatch.schemas import AlarmMessage, dump

        for alarm_id, spec in sorted(zip(self.scenario.alarm_ids(), self.scenario.alarms), key=lambda a: a[1].at_s):
            if not await self.clock.sleep_until(spec.at_s, stop):
                return
            msg = AlarmMessage(id=alarm_id, kind=spec.kind, lat=spec.lat, lon=spec.lon, priority=spec.priority,
                               text=spec.text, ts=time.time())
            self.store.add(self.clock(), "alarm_sent", f"scenario.{alarm_id}", lat=spec.lat, lon=spec.lon,
                           kind=spec.kind, text=spec.text, at_s=spec.at_s)
            try:
                await self.publisher.session.publish(self.dispatcher.topics.alarms("scenario"), dump(msg), qos=1)
            except Exception as exc:
                self.store.add(self.clock(), "stage_error", "alarms", error=f"alarm {alarm_id} not sent: {exc}")
            self.alarms_pending -= 1

    async def script_faults(self, stop: asyncio.Event) -> None:
        """Inject the scenario's faults over the wire, the same way for every vehicle kind: a link
        cut silences the drone's relay, a battery fault sets SIM_BATT_VOLTAGE (as ArduPilot's
        autotest does). A fault that cannot be injected is recorded as `fault_refused`."""
        for fault in sorted(self.scenario.faults, key=lambda f: f.at_s):
            if not await self.clock.sleep_until(fault.at_s, stop):
                return
            t = self.clock()
            if fault.link_cut:
                self._cut_link(t, fault.link_cut.drone, fault.link_cut.seconds)
            elif fault.battery:
                await self._battery_fault(t, fault.battery.drone, fault.battery.pct)
            elif fault.broker_restart:
                self.store.add(t, "fault", "broker_restart", down_s=fault.broker_down_s)
                if self.broker_restart is None:
                    self.store.add(t, "stage_error", "faults", error="broker_restart: this broker cannot be restarted")
                else:
                    await self.broker_restart(fault.broker_down_s)

    def _drone_id(self, number: int) -> str | None:
        ids = [d.drone_id for d in self.plan.drones]
        return ids[number - 1] if 1 <= number <= len(ids) else None

    def _refuse(self, t: float, fault: str, drone: int, reason: str) -> None:
        log.warning("fault %s on drone %d refused: %s", fault, drone, reason)
        self.store.add(t, "fault_refused", fault, drone=drone, reason=reason)

    def _cut_link(self, t: float, drone: int, seconds: float) -> None:
        drone_id = self._drone_id(drone)
        relay = self.relays.get(drone_id) if drone_id else None
        if relay is None:
            self._refuse(t, "link_cut", drone, f"drone {drone} has no link relay (not flying, or a serial link)")
            return
        relay.cut(seconds)
        self.store.add(t, "fault", "link_cut", drone=drone, drone_id=drone_id, seconds=seconds)

    async def _battery_fault(self, t: float, drone: int, pct: float) -> None:
        from flight import FlightError

        drone_id = self._drone_id(drone)
        if drone_id is None:
            self._refuse(t, "battery", drone, f"there is no drone {drone}")
            return
        vehicle = self.fleet[drone - 1]
        try:
            full_v = self.drones.battery_full_v.get(drone_id)
            if full_v is None:
                full_v = await asyncio.wait_for(vehicle.params.get("SIM_BATT_VOLTAGE"), BATTERY_FAULT_TIMEOUT_S)
            volt = battery_voltage_for(pct, full_v)
            await asyncio.wait_for(vehicle.params.set("SIM_BATT_VOLTAGE", volt), BATTERY_FAULT_TIMEOUT_S)
        except (FlightError, TimeoutError) as exc:
            self._refuse(t, "battery", drone, f"{drone_id} has no settable SIM_BATT_VOLTAGE (a real drone, or the "
                                              f"link is down): {exc or 'timed out'}")
            return
        self.drones.battery_full_v[drone_id] = full_v
        self.store.add(t, "fault", "battery", drone=drone, drone_id=drone_id, pct=pct, voltage_v=round(volt, 2))

    async def live(self, stop: asyncio.Event) -> None:
        from runloop.live import live_table

        vision = None
        if self.vision_workers == "process":
            def vision() -> dict[str, str]:
                return {e.drone_id: e.live_status() for e in self.eyes}
        await live_table(stop, self.clock, self.drones, self.recorder, self.world, vision=vision)

    async def finish_when_done(self, stop: asyncio.Event) -> None:
        """Stop at duration_s, or earlier once every sortie is flown, every scripted incident has
        started and every case the dispatcher opened is closed."""
        done_since: float | None = None
        while not stop.is_set():
            t = self.clock()
            if t >= self.scenario.duration_s:
                self.store.add(t, "run_end", "duration")
                break
            if self.drones.ending and self.drones.all_finished:
                self.store.add(t, "run_end", "shift ended")  # the operator's "end shift": all drones home
                break
            done = (self.drones.all_finished and all(i.started_s is not None for i in self.world.incidents)
                    and not self.alarms_pending
                    and not self.dispatcher.cases and not any(r.overwatch_incident for r in self.drones.drones.values()))
            if done:
                done_since = done_since if done_since is not None else t
                if t - done_since >= FINISH_GRACE_S:
                    self.store.add(t, "run_end", "all work done")
                    break
            else:
                done_since = None
            await asyncio.sleep(0.2)
        stop.set()

    def record_stage_errors(self, errors) -> None:
        for exc in errors:
            log.error("patrol stage failed: %r", exc, exc_info=exc)
            if hasattr(self, "store"):
                self.store.add(self.clock(), "stage_error", type(exc).__name__, error=str(exc) or repr(exc))

    def stop_on_signals(self, stop: asyncio.Event) -> None:
        import signal

        loop = asyncio.get_running_loop()
        self._signals = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
                self._signals.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests)
                pass

    def remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in getattr(self, "_signals", []):
            loop.remove_signal_handler(sig)

    # ------------------------------------------------------------------ shutdown and report
    async def shutdown(self) -> None:
        ended_s = self.clock()
        if hasattr(self, "ledger") and hasattr(self, "store"):
            self.store.set_meta("coverage", self.ledger.summary())
        if hasattr(self, "store"):
            self.store.set_meta("run", {"started_wall": self.started_wall, "speedup": self.scenario.speedup,
                                        "ended_s": round(ended_s, 1), "wall_s": round(time.time() - self.started_wall, 1)})
        for name, undo in reversed(self._undo):
            try:
                result = undo()
                if asyncio.iscoroutine(result):
                    # a routed return is flown leg by leg before the links may close
                    await asyncio.wait_for(result, LEAVE_SAFE_TIMEOUT_S if name == "fleet-home" else 15)
            except Exception as exc:
                log.warning("stopping %s: %s", name, exc)

    async def leave_drones_safe(self) -> None:
        """Before the links close: every airborne drone flies home along the routed return (or
        holds, by `fleet.on_stop`), never left to its GCS failsafe's straight-line RTL across a
        no-fly zone. Each one's outcome is noted in the event store."""
        from flight import FlightError

        hold = self.scenario.fleet.on_stop == "hold"

        async def one(v) -> None:
            s = v.state
            if not (s.link_ok and s.armed and s.airborne) or s.mode == "LAND":
                return
            fa = v.fence_avoidance
            crosses = (fa is not None and not fa.onboard and s.pose is not None and s.home is not None
                       and fa.return_crosses((s.pose.lat, s.pose.lon), s.home[:2]))
            try:
                if hold and not crosses:
                    await v.action.hold()
                    detail = "run stopped: holding in GUIDED where it is"
                else:
                    routed = await v.action.return_home()
                    detail = ("run stopped: " + ("a failsafe RTL from here would cross a no-fly zone; " if hold else "")
                              + (f"returned round the no-fly zones through {len(routed)} point(s), then RTL"
                                 if routed else "sent home (RTL)"))
            except FlightError as exc:
                detail = f"run stopped: could not send it home: {exc}"
            self.store.add(self.clock(), "note", "on_stop", drone=v.drone_id, detail=detail)
            print(f"{v.drone_id}: {detail}", flush=True)

        await asyncio.gather(*(one(v) for v in self.fleet))

    def write_report(self) -> dict:
        from runloop.report import write_report

        return write_report(self.out)


def _worker_logins(path: Path, video: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Each watched drone's worker login from patrol broker-config's credentials.yaml (user: password)."""
    import yaml

    from dispatch.broker_config import DRONE_USER_PREFIX

    try:
        credentials = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RunError(f"--worker-logins {path}: cannot read it: {exc}") from exc
    if not isinstance(credentials, dict):
        raise RunError(f"--worker-logins {path}: not a credentials.yaml of patrol broker-config (user: password)")
    logins = {}
    for drone_id in video:
        user = f"{DRONE_USER_PREFIX}{drone_id}"
        if not credentials.get(user):
            raise RunError(f"--worker-logins {path}: no login {user} for {drone_id}'s vision worker "
                           f"(patrol broker-config --drones {drone_id} makes one)")
        logins[drone_id] = (user, str(credentials[user]))
    return logins


def shift_parts_m(plan) -> dict:
    """(grid_id, part) -> the ground that part's lanes show, for a ledger counting part visits the
    way the shift's schedule plans them (a cell too big for one battery has several parts)."""
    from mission_planner.lanes import seen_area

    flyable = plan.flyable_polygons_m
    out = {}
    for u in plan.units:
        out[(u.grid_id, u.part)] = (flyable[u.grid_id] if u.parts == 1
                                    else seen_area(u.lanes, plan.footprint_m).intersection(flyable[u.grid_id]))
    return out


def battery_voltage_for(pct: float, full_v: float) -> float:
    """Pack voltage at `pct` % for a pack whose full voltage is `full_v` (cells = full_v / 4.2).

    >>> round(battery_voltage_for(20, 12.6), 2)
    10.44
    """
    cells = max(1, round(full_v / CELL_FULL_V))
    return cells * (CELL_EMPTY_V + (CELL_FULL_V - CELL_EMPTY_V) * pct / 100.0)


def _free_port_block(count: int, step: int = 10) -> int:
    import random
    import socket

    for _ in range(200):
        base = random.randrange(20000, 60000 - step * count)
        socks = []
        try:
            for i in range(count):
                s = socket.socket()
                s.bind(("127.0.0.1", base + step * i))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RunError("no free block of loopback ports for the simulated vehicles")
