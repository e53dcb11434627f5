"""One ArduCopter over MAVLink, asyncio-native, reached by capability (MAVSDK style):

    async with Vehicle("tcp:127.0.0.1:5760", drone_id="d1") as v:
        await v.mission.upload_verified(mission)
        await v.action.arm()
        await v.action.takeoff(20)
        async for pose in v.telemetry.poses(): ...

The core here keeps the link, the heartbeat watch and the telemetry state; `mission`, `action`,
`telemetry`, `params` and `retask` are thin capability objects over it, each written against the
narrow `flight.core.VehicleCore` protocol (plus the sibling capabilities it uses), never against
this class: no flight module imports this one but the command line, the fleet and the sortie.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

from common.modes import RETURN_MODES, mode_name, mode_number
from common.values import Pose
from flight.action import Action
from flight.avoidance import FenceAvoidance
from flight.config import FlightConfig
from flight.errors import (MAV_RESULT_NAMES, CommandRejected, FlightError, FlightTimeout, LinkError, LinkLostError)
from flight.events import EventKind, VehicleEvent
from flight.link import LinkAddress, MavlinkLink, load_signing_key, mav, parse_url
from flight.mission import MissionClient
from flight.params import Params
from flight.retask import Retask
from flight.safety import ConsumptionModel, apply_failsafe_params
from flight.state import EventStream, VehicleState, VehicleText
from flight.telemetry import Telemetry

log = logging.getLogger(__name__)

# Telemetry groups requested on connect (ArduPilot's REQUEST_DATA_STREAM ids).
_STREAMS = (mav.MAV_DATA_STREAM_EXTENDED_STATUS, mav.MAV_DATA_STREAM_POSITION,
            mav.MAV_DATA_STREAM_EXTRA1, mav.MAV_DATA_STREAM_EXTRA2, mav.MAV_DATA_STREAM_EXTRA3)
# ... and the same messages by id, for autopilots that only honour SET_MESSAGE_INTERVAL.
_INTERVAL_MSGS = (mav.MAVLINK_MSG_ID_GLOBAL_POSITION_INT, mav.MAVLINK_MSG_ID_ATTITUDE,
                  mav.MAVLINK_MSG_ID_VFR_HUD, mav.MAVLINK_MSG_ID_SYS_STATUS,
                  mav.MAVLINK_MSG_ID_GPS_RAW_INT, mav.MAVLINK_MSG_ID_MISSION_CURRENT,
                  mav.MAVLINK_MSG_ID_EKF_STATUS_REPORT, mav.MAVLINK_MSG_ID_BATTERY_STATUS)


class _Subscription:
    __slots__ = ("types", "pred", "queue")

    def __init__(self, types: frozenset[str], pred: Callable | None) -> None:
        self.types = types
        self.pred = pred
        self.queue: asyncio.Queue = asyncio.Queue()


class Vehicle:
    """One vehicle. Use `async with Vehicle(url) as v:` or `await v.connect()` / `await v.close()`."""

    def __init__(self, url: str | LinkAddress, *, drone_id: str = "", config: FlightConfig | None = None,
                 system_id: int | None = None) -> None:
        self.address = url if isinstance(url, LinkAddress) else parse_url(url)
        self.config = config or FlightConfig()
        self.drone_id = drone_id or str(self.address)
        self.state = VehicleState(drone_id=self.drone_id)
        self.target_system = system_id or 0
        self.target_component = 1
        self._wanted_system = system_id
        lc = self.config.link
        key = load_signing_key(lc.signing_key_file) if lc.signing_key_file else None
        self.link = MavlinkLink(self.address, self._on_message, source_system=lc.source_system,
                                source_component=lc.source_component, signing_key=key,
                                signing_link_id=lc.signing_link_id, reconnect_interval_s=lc.reconnect_interval_s,
                                on_broken=self._link_broken)
        self._subs: dict[str, list[_Subscription]] = {}
        self._state_waiters: list[tuple[Callable[[VehicleState], bool], asyncio.Future]] = []
        self.event_queues: list[asyncio.Queue] = []
        self.pose_queues: list[asyncio.Queue] = []
        self._tasks: list[asyncio.Task] = []
        self._attitude = (0.0, 0.0, 0.0)
        self._vfr = (0.0, 0.0)
        self._last_position_s = 0.0
        self._last_stream_request_s = 0.0
        self._commanded_mode: tuple[int, float] | None = None  # (custom_mode, monotonic when we asked)
        self.messages_in = 0
        self.link_losses = 0
        # set by enable_fence_avoidance() after a fence with no-fly zones is uploaded
        self.fence_avoidance: FenceAvoidance | None = None
        # what this vehicle draws aloft: its airframe profile, refined as it reports in flight
        self.consumption = ConsumptionModel(self.config.airframe, learn_s=self.config.energy.min_learn_s)
        self._connected = False
        self.mission = MissionClient(self)
        self.action = Action(self)
        self.telemetry = Telemetry(self)
        self.params = Params(self)
        self.retask = Retask(self)

    # ---- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> "Vehicle":
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def connect(self, timeout_s: float | None = None, *, apply_safety: bool | None = None) -> None:
        """Open the link, wait for the autopilot's HEARTBEAT, request telemetry, set failsafes."""
        timeout_s = timeout_s or self.config.link.connect_timeout_s
        deadline = time.monotonic() + timeout_s
        while True:  # the vehicle may still be starting: keep trying to open until the deadline
            try:
                await self.link.open()
                break
            except LinkError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)
        self._tasks.append(asyncio.create_task(self._heartbeat_loop(), name=f"{self.drone_id}-gcs-heartbeat"))
        try:
            await self.wait_until(lambda s: s.link_ok, max(0.1, deadline - time.monotonic()),
                                  what="first HEARTBEAT from the autopilot", check_link=False)
        except FlightTimeout as exc:
            await self.close()
            raise LinkError(f"no HEARTBEAT from an autopilot at {self.address} within {timeout_s:.0f} s",
                            drone_id=self.drone_id) from exc
        self._connected = True
        self._tasks.append(asyncio.create_task(self._watchdog_loop(), name=f"{self.drone_id}-link-watch"))
        self.request_streams()
        self.request_message(mav.MAVLINK_MSG_ID_HOME_POSITION)
        safety = self.config.safety
        if apply_safety if apply_safety is not None else safety.apply_on_connect:
            try:
                await apply_failsafe_params(self, safety)
            except BaseException:
                await self.close()  # a vehicle whose failsafes we could not set is not handed out
                raise

    async def close(self) -> None:
        self._connected = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.link.close()
        for _, fut in self._state_waiters:
            if not fut.done():
                fut.set_exception(LinkError("vehicle closed", drone_id=self.drone_id))
        self._state_waiters.clear()
        for q in self.event_queues + self.pose_queues:
            q.put_nowait(None)

    # ---- sending ---------------------------------------------------------------------------
    def send(self, name: str, *args) -> None:
        """Send one message by its pymavlink name, e.g. send("mission_count", sys, comp, n, 0)."""
        getattr(self.link.mav, name + "_send")(*args)

    def request_streams(self) -> None:
        rate = self.config.link.stream_rate_hz
        for stream in _STREAMS:
            self.send("request_data_stream", self.target_system, self.target_component, stream, rate, 1)
        interval_us = int(1e6 / rate)
        for msg_id in _INTERVAL_MSGS:
            self.send("command_long", self.target_system, self.target_component,
                      mav.MAV_CMD_SET_MESSAGE_INTERVAL, 0, msg_id, interval_us, 0, 0, 0, 0, 0)
        self._last_stream_request_s = time.monotonic()

    def request_message(self, msg_id: int) -> None:
        self.send("command_long", self.target_system, self.target_component,
                  mav.MAV_CMD_REQUEST_MESSAGE, 0, msg_id, 0, 0, 0, 0, 0, 0)

    async def command_long(self, command: int, *params: float, timeout_s: float | None = None,
                           attempts: int | None = None, error: type[CommandRejected] = CommandRejected,
                           what: str = "") -> object:
        """COMMAND_LONG with resends until a COMMAND_ACK; raises `error` unless ACCEPTED."""
        p = [float(x) for x in params] + [0.0] * (7 - len(params))

        def send(confirmation: int) -> None:
            self.send("command_long", self.target_system, self.target_component, command, confirmation, *p)
        return await self._command(command, send, timeout_s, attempts, error, what)

    async def command_int(self, command: int, *, frame: int = mav.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT,
                          params: tuple[float, float, float, float] = (0, 0, 0, 0), lat: float = 0.0,
                          lon: float = 0.0, alt_m: float = 0.0, timeout_s: float | None = None,
                          attempts: int | None = None, error: type[CommandRejected] = CommandRejected,
                          what: str = "") -> object:
        """COMMAND_INT (position commands such as DO_REPOSITION must use it on ArduCopter)."""
        x, y = int(round(lat * 1e7)), int(round(lon * 1e7))

        def send(_confirmation: int) -> None:
            self.send("command_int", self.target_system, self.target_component, frame, command, 0, 0,
                      *[float(v) for v in params], x, y, float(alt_m))
        return await self._command(command, send, timeout_s, attempts, error, what)

    async def _command(self, command, send, timeout_s, attempts, error, what):
        lc = self.config.link
        timeout_s = timeout_s or lc.command_timeout_s
        attempts = attempts or lc.command_attempts
        started = time.time()
        label = what or f"command {command}"
        with self.subscribe({"COMMAND_ACK"}, lambda m: m.command == command) as sub:
            for attempt in range(attempts):
                send(attempt)
                deadline = time.monotonic() + timeout_s
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        ack = await asyncio.wait_for(sub.queue.get(), left)
                    except asyncio.TimeoutError:
                        break
                    if ack is None:
                        raise LinkError(f"{label}: vehicle closed", drone_id=self.drone_id)
                    if ack.result == mav.MAV_RESULT_IN_PROGRESS:
                        deadline = time.monotonic() + timeout_s * 5
                        continue
                    if ack.result == mav.MAV_RESULT_ACCEPTED:
                        return ack
                    # Give the vehicle a moment to say why (its STATUSTEXT follows the ACK).
                    await asyncio.sleep(0.15)
                    raise error(command, ack.result,
                                f"{label} rejected: {MAV_RESULT_NAMES.get(ack.result, ack.result)}",
                                drone_id=self.drone_id, reasons=self.state.reasons(started))
        raise FlightTimeout(f"{label}: no COMMAND_ACK after {attempts} sends", drone_id=self.drone_id,
                            reasons=self.state.reasons(started))

    # ---- receiving -------------------------------------------------------------------------
    @contextlib.contextmanager
    def subscribe(self, types: set[str], pred: Callable | None = None):
        """Collect the target vehicle's messages of `types` (matching pred) into sub.queue."""
        sub = _Subscription(frozenset(types), pred)
        for t in sub.types:
            self._subs.setdefault(t, []).append(sub)
        try:
            yield sub
        finally:
            for t in sub.types:
                self._subs[t].remove(sub)

    async def recv(self, sub: _Subscription, timeout_s: float) -> object | None:
        """Next message of a subscription, or None after timeout_s."""
        try:
            msg = await asyncio.wait_for(sub.queue.get(), timeout_s)
        except asyncio.TimeoutError:
            return None
        if msg is None:
            raise LinkError("vehicle closed", drone_id=self.drone_id)
        return msg

    async def wait_until(self, pred: Callable[[VehicleState], bool], timeout_s: float, *, what: str,
                         check_link: bool = True, tolerate_link_loss: bool = False,
                         abort: Callable[[VehicleState], str | None] | None = None) -> VehicleState:
        """Block until pred(state) holds; FlightTimeout (with the vehicle's reasons) otherwise.

        A link loss while waiting raises LinkLostError at once unless `tolerate_link_loss`;
        `abort(state)` returning a text ends the wait early with a FlightError saying it.
        """
        if pred(self.state):
            return self.state
        started = time.time()
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        link_matters = check_link and not tolerate_link_loss

        def full(s: VehicleState) -> bool:
            if link_matters and not s.link_ok:
                raise LinkLostError(f"link lost while waiting for {what}", drone_id=self.drone_id,
                                    reasons=s.reasons(started - 1))
            if pred(s):
                return True
            why = abort(s) if abort is not None else None
            if why:
                raise FlightError(f"gave up waiting for {what}: {why}", drone_id=self.drone_id,
                                  reasons=s.reasons(started - 1))
            return False
        entry = (full, fut)
        self._state_waiters.append(entry)
        try:
            await asyncio.wait_for(fut, timeout_s)
        except asyncio.TimeoutError:
            raise FlightTimeout(f"timed out after {timeout_s:.0f} s waiting for {what}", drone_id=self.drone_id,
                                reasons=self.state.reasons(started - 2)) from None
        finally:
            if entry in self._state_waiters:
                self._state_waiters.remove(entry)
        return self.state

    # ---- wait_* helpers: block until true or raise FlightTimeout with the vehicle's reasons ----
    async def wait_heartbeat(self, timeout_s: float = 10.0) -> VehicleState:
        return await self.wait_until(lambda s: s.link_ok, timeout_s, what="HEARTBEAT", check_link=False)

    async def wait_armable(self, timeout_s: float = 90.0) -> VehicleState:
        """Until the vehicle's pre-arm checks pass (its 'PreArm:' texts are the error's reasons)."""
        return await self.wait_until(lambda s: s.armable, timeout_s, what="pre-arm checks to pass")

    async def wait_mode(self, mode: str, timeout_s: float = 10.0) -> VehicleState:
        want = mode_number(mode)
        return await self.wait_until(lambda s: s.custom_mode == want, timeout_s, what=f"mode {mode.upper()}")

    async def wait_altitude(self, min_m: float, max_m: float = 1e9, timeout_s: float = 60.0,
                            minimum_duration_s: float = 0.0,
                            abort: Callable[[VehicleState], str | None] | None = None) -> VehicleState:
        """Until the altitude above home is within [min_m, max_m] (and stays there minimum_duration_s)."""
        def inside(s: VehicleState) -> bool:
            return s.pose is not None and min_m <= s.pose.alt_rel_m <= max_m
        deadline = time.monotonic() + timeout_s
        while True:
            await self.wait_until(inside, max(0.01, deadline - time.monotonic()),
                                  what=f"altitude between {min_m:.1f} and {max_m:.1f} m", abort=abort)
            if minimum_duration_s <= 0:
                return self.state
            try:
                await self.wait_until(lambda s: not inside(s), minimum_duration_s, what="altitude to leave band")
            except FlightTimeout:
                return self.state
            if time.monotonic() > deadline:
                raise FlightTimeout(f"altitude did not hold in [{min_m}, {max_m}] m", drone_id=self.drone_id)

    async def wait_mission_item(self, seq: int, timeout_s: float = 300.0) -> VehicleState:
        """Until mission item `seq` is reached (or passed)."""
        return await self.wait_until(lambda s: s.last_reached_seq >= seq or s.mission_seq > seq, timeout_s,
                                     what=f"mission item {seq}")

    async def wait_current_item(self, seq: int, timeout_s: float = 10.0) -> VehicleState:
        return await self.wait_until(lambda s: s.mission_seq == seq, timeout_s, what=f"current item {seq}")

    async def wait_position(self, lat: float, lon: float, within_m: float = 5.0, timeout_s: float = 120.0,
                            abort: Callable[[VehicleState], str | None] | None = None) -> VehicleState:
        from common.geo import distance_m
        return await self.wait_until(
            lambda s: s.pose is not None and distance_m(s.pose.lat, s.pose.lon, lat, lon) <= within_m,
            timeout_s, what=f"arrival within {within_m:.0f} m of {lat:.6f},{lon:.6f}", abort=abort)

    async def wait_disarmed(self, timeout_s: float = 300.0, *, tolerate_link_loss: bool = True) -> VehicleState:
        """Until the vehicle is disarmed (landed); link losses on the way are tolerated by default."""
        return await self.wait_until(lambda s: s.link_ok and not s.armed, timeout_s, what="disarmed on the ground",
                                     tolerate_link_loss=tolerate_link_loss)

    def events(self) -> "EventStream":
        """An async iterator of this vehicle's events from now on (`async for ev in v.events()`)."""
        return EventStream(self.event_queues)

    def emit(self, kind: EventKind, detail: str = "", seq: int | None = None) -> None:
        ev = VehicleEvent(kind, self.drone_id, time.time(), detail, seq)
        log.info("%s", ev)
        for q in self.event_queues:
            q.put_nowait(ev)

    def _on_message(self, msg) -> None:
        self.messages_in += 1
        src = msg.get_srcSystem()
        mtype = msg.get_type()
        if mtype == "HEARTBEAT":
            if msg.type == mav.MAV_TYPE_GCS or msg.autopilot == mav.MAV_AUTOPILOT_INVALID:
                return
            if not self.target_system:
                if self._wanted_system and src != self._wanted_system:
                    return
                self.target_system = src
                self.target_component = msg.get_srcComponent()
                self.state.system_id = src
        if src != self.target_system:
            return
        handler = _HANDLERS.get(mtype)
        if handler is not None:
            handler(self, msg)
        for sub in self._subs.get(mtype, ()):
            if sub.pred is None or sub.pred(msg):
                sub.queue.put_nowait(msg)
        if self._state_waiters:
            for pred, fut in list(self._state_waiters):
                if fut.done():
                    continue
                try:
                    if pred(self.state):
                        fut.set_result(True)
                except FlightError as exc:
                    fut.set_exception(exc)

    def _poke_waiters(self) -> None:
        for pred, fut in list(self._state_waiters):
            if not fut.done():
                try:
                    if pred(self.state):
                        fut.set_result(True)
                except FlightError as exc:
                    fut.set_exception(exc)

    # ---- message handlers (state only; cheap: they run for every message) -------------------
    def _h_heartbeat(self, msg) -> None:
        s = self.state
        s.last_heartbeat_s = time.monotonic()
        if not s.link_ok:
            s.link_ok = True
            if self._connected:
                self._tasks = [t for t in self._tasks if not t.done()]
                self._tasks.append(asyncio.get_running_loop().create_task(self._resync()))
        armed = bool(msg.base_mode & mav.MAV_MODE_FLAG_SAFETY_ARMED)
        s.system_status = msg.system_status
        if msg.custom_mode != s.custom_mode:
            old = s.mode
            s.custom_mode = msg.custom_mode
            s.mode = mode_name(msg.custom_mode)
            if old != "UNKNOWN":
                self.emit(EventKind.MODE_CHANGED, f"{old} -> {s.mode}")
                asked = self._commanded_mode
                if (s.mode in RETURN_MODES and s.armed
                        and (asked is None or asked[0] != msg.custom_mode or time.monotonic() - asked[1] > 30)):
                    self.emit(EventKind.FAILSAFE, f"vehicle switched itself to {s.mode}")
        if armed != s.armed:
            s.armed = armed
            if armed:
                self.emit(EventKind.ARMED)
            else:
                self.emit(EventKind.DISARMED)
                if s.airborne:
                    s.airborne = False
                    self.emit(EventKind.LANDED)

    def _h_global_position_int(self, msg) -> None:
        s = self.state
        roll, pitch, yaw = self._attitude
        gs, hdg = self._vfr
        if msg.hdg != 65535:
            hdg = msg.hdg / 100.0
        if not gs:
            gs = math.hypot(msg.vx, msg.vy) / 100.0
        s.pose = Pose(time.time(), msg.lat / 1e7, msg.lon / 1e7, msg.relative_alt / 1000.0, msg.alt / 1000.0,
                      roll, pitch, yaw, gs, hdg, self.drone_id)
        self._last_position_s = time.monotonic()
        s.time_boot_s = msg.time_boot_ms / 1000.0
        if s.armed and not s.airborne and s.pose.alt_rel_m > 1.0:
            s.airborne = True
            self.emit(EventKind.TOOK_OFF, f"alt {s.pose.alt_rel_m:.1f} m")
        for q in self.pose_queues:
            if q.qsize() >= 100:  # a slow reader loses the oldest poses, never the newest
                q.get_nowait()
            q.put_nowait(s.pose)

    def _h_attitude(self, msg) -> None:
        self._attitude = (math.degrees(msg.roll), math.degrees(msg.pitch), math.degrees(msg.yaw) % 360.0)

    def _h_vfr_hud(self, msg) -> None:
        self._vfr = (msg.groundspeed, float(msg.heading))
        self.state.climb_m_s = msg.climb

    def _h_sys_status(self, msg) -> None:
        s = self.state
        s.battery_voltage_v = msg.voltage_battery / 1000.0 if msg.voltage_battery != 65535 else None
        s.battery_current_a = msg.current_battery / 100.0 if msg.current_battery >= 0 else None
        s.battery_remaining_pct = float(msg.battery_remaining) if msg.battery_remaining >= 0 else None
        s.sensors_present = msg.onboard_control_sensors_present
        s.sensors_health = msg.onboard_control_sensors_health

    def _h_battery_status(self, msg) -> None:
        if msg.id == 0 and msg.current_consumed >= 0:
            self.state.battery_consumed_mah = float(msg.current_consumed)
        self.consumption.observe(self.state)

    def _h_gps_raw_int(self, msg) -> None:
        self.state.gps_fix_type = msg.fix_type
        self.state.satellites = msg.satellites_visible

    def _h_ekf_status_report(self, msg) -> None:
        self.state.ekf_flags = msg.flags

    def _h_home_position(self, msg) -> None:
        self.state.home = (msg.latitude / 1e7, msg.longitude / 1e7, msg.altitude / 1000.0)

    def _h_mission_current(self, msg) -> None:
        s = self.state
        s.mission_seq = msg.seq
        s.mission_total = getattr(msg, "total", 0) or s.mission_total
        s.mission_state = getattr(msg, "mission_state", 0)

    def _h_mission_item_reached(self, msg) -> None:
        self.state.last_reached_seq = msg.seq
        self.emit(EventKind.ITEM_REACHED, seq=msg.seq)

    def _h_extended_sys_state(self, msg) -> None:
        self.state.landed_state = msg.landed_state

    def _h_statustext(self, msg) -> None:
        text = msg.text if isinstance(msg.text, str) else msg.text.decode("utf-8", "replace")
        text = text.rstrip("\x00").strip()
        self.state.texts.append(VehicleText(time.time(), msg.severity, text))
        low = text.lower()
        if msg.severity <= 4:
            if "failsafe" in low and "cleared" not in low:
                self.emit(EventKind.FAILSAFE, text)
            else:
                self.emit(EventKind.VEHICLE_TEXT, text)

    # ---- background tasks ------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        # The vehicle's GCS failsafe watches these; 1 Hz as every GCS sends.
        while True:
            self.send("heartbeat", mav.MAV_TYPE_GCS, mav.MAV_AUTOPILOT_INVALID, 0, 0, mav.MAV_STATE_ACTIVE)
            await asyncio.sleep(1.0 / self.config.link.gcs_heartbeat_hz)

    async def _watchdog_loop(self) -> None:
        timeout = self.config.link.heartbeat_timeout_s
        while True:
            await asyncio.sleep(0.25)
            s = self.state
            now = time.monotonic()
            if s.link_ok and now - s.last_heartbeat_s > timeout:
                s.link_ok = False
                self.link_losses += 1
                self.emit(EventKind.LINK_LOST, f"no HEARTBEAT for {now - s.last_heartbeat_s:.1f} s")
                self._poke_waiters()
            elif s.link_ok and now - self._last_position_s > 3.0 and now - self._last_stream_request_s > 3.0:
                self.request_streams()  # the request itself may have been lost on a lossy link

    def _link_broken(self, why: str) -> None:
        """The transport itself broke (TCP reset): lost now, without waiting for the heartbeat timeout."""
        s = self.state
        if s.link_ok and self._connected:
            s.link_ok = False
            self.link_losses += 1
            self.emit(EventKind.LINK_LOST, f"{why}; reopening")
            self._poke_waiters()

    async def _resync(self) -> None:
        """After a link loss: ask for streams and home again, then say what the vehicle did meanwhile."""
        self.request_streams()
        self.request_message(mav.MAVLINK_MSG_ID_HOME_POSITION)
        await asyncio.sleep(0.5)
        s = self.state
        alt = f", alt {s.pose.alt_rel_m:.0f} m" if s.pose else ""
        self.emit(EventKind.LINK_REGAINED,
                  f"mode {s.mode}, {'armed' if s.armed else 'disarmed'}{alt}, mission item {s.mission_seq}")

    def note_commanded_mode(self, custom_mode: int) -> None:
        self._commanded_mode = (custom_mode, time.monotonic())

    def __repr__(self) -> str:
        return f"Vehicle({self.drone_id!r}, {self.address}, mode={self.state.mode}, armed={self.state.armed})"


_HANDLERS: dict[str, Callable[[Vehicle, object], None]] = {
    "HEARTBEAT": Vehicle._h_heartbeat,
    "GLOBAL_POSITION_INT": Vehicle._h_global_position_int,
    "ATTITUDE": Vehicle._h_attitude,
    "VFR_HUD": Vehicle._h_vfr_hud,
    "SYS_STATUS": Vehicle._h_sys_status,
    "BATTERY_STATUS": Vehicle._h_battery_status,
    "GPS_RAW_INT": Vehicle._h_gps_raw_int,
    "EKF_STATUS_REPORT": Vehicle._h_ekf_status_report,
    "HOME_POSITION": Vehicle._h_home_position,
    "MISSION_CURRENT": Vehicle._h_mission_current,
    "MISSION_ITEM_REACHED": Vehicle._h_mission_item_reached,
    "EXTENDED_SYS_STATE": Vehicle._h_extended_sys_state,
    "STATUSTEXT": Vehicle._h_statustext,
}
