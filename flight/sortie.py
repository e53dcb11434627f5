"""Fly one sortie end to end: verified upload, arm, take off, AUTO, watch, land.

A sortie counts as flown only when the vehicle worked through its whole mission and is disarmed
on the ground. Anything else (a refused arm, a failsafe RTL, the energy watch sending it home)
ends in SortieAborted carrying the vehicle's own words.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from common.values import MAV_CMD_NAV_LAND, MAV_CMD_NAV_RETURN_TO_LAUNCH, MAV_CMD_NAV_TAKEOFF, Mission
from flight.errors import EnergyShortfall, FlightError, FlightTimeout, SortieAborted
from flight.events import EventKind
from flight.safety import EnergyWatch, sortie_energy
from flight.sortie_phases import TRANSITIONS, Facts, Phase, next_transition

if TYPE_CHECKING:
    from flight.vehicle import Vehicle

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class SortieReport:
    drone_id: str
    name: str
    flown: bool = False
    verified: bool = False
    items_total: int = 0
    items_reached: int = 0
    duration_s: float = 0.0
    battery_used_pct: float | None = None
    max_alt_m: float = 0.0
    incidents: list[str] = field(default_factory=list)  # failsafes, link losses, low battery

    def summary(self) -> str:
        state = "flown" if self.flown else ("verified" if self.verified and not self.duration_s else "NOT flown")
        batt = f", battery used {self.battery_used_pct:.0f} %" if self.battery_used_pct is not None else ""
        extra = f"; {'; '.join(self.incidents)}" if self.incidents else ""
        return (f"{self.drone_id} {self.name or 'sortie'}: {state}, {self.items_reached}/{self.items_total} items, "
                f"{self.duration_s:.0f} s, max alt {self.max_alt_m:.0f} m{batt}{extra}")


def takeoff_alt_m(mission: Mission, default_m: float) -> float:
    for item in mission.items[1:]:
        if item.command == MAV_CMD_NAV_TAKEOFF and item.alt_m > 0:
            return item.alt_m
    return default_m


async def fly_sortie(vehicle: "Vehicle", mission: Mission, *, progress: Progress | None = None,
                     verify_only: bool = False, timeout_s: float | None = None) -> SortieReport:
    """Upload (verified) and fly `mission`; returns the report, raises SortieAborted if not flown."""
    v = vehicle
    say = progress or (lambda text: log.info("%s", text))
    n = len(mission.items)
    report = SortieReport(v.drone_id, mission.name, items_total=max(0, n - 1))
    if n < 2:
        raise SortieAborted(f"sortie {mission.name!r} has no items beyond home", drone_id=v.drone_id)
    if v.config.check_energy:
        # before anything changes on the vehicle: a sortie its battery cannot hold is not flown
        energy = await sortie_energy(v, mission)
        if not energy.fits and not verify_only:
            raise EnergyShortfall(f"sortie {mission.name!r} does not fit the battery: {energy.describe()}; "
                                  f"not armed", drone_id=v.drone_id, energy=energy)
        say(f"{v.drone_id}: energy: {energy.describe()}{'' if energy.fits else ' - does NOT fit'}")
    say(f"{v.drone_id}: uploading {n} mission items, {len(mission.fence_items())} fence items, "
        f"{len(mission.rally)} rally points (verified)")
    await v.mission.upload_sortie(mission, write_params=not verify_only)
    report.verified = True
    say(f"{v.drone_id}: mission, fence and rally verified on the vehicle")
    if v.fence_avoidance is not None:
        say(f"{v.drone_id}: no-fly zones on the way home: {v.fence_avoidance.detail}")
    if verify_only:
        return report

    run = _SortieRun(v, mission, say, report, timeout_s or v.config.sortie_timeout_s)
    try:
        await run.fly()
        return report
    finally:
        run.close()


class _SortieRun:
    """One sortie from arming to landing, driven through the phases of flight/sortie_phases.py:
    each pass observes the vehicle, condenses it into Facts and takes what the table says."""

    def __init__(self, v: "Vehicle", mission: Mission, say: Progress, report: SortieReport, timeout_s: float):
        self.v, self.mission, self.say, self.report, self.timeout_s = v, mission, say, report, timeout_s
        self.n = len(mission.items)
        self.last = mission.items[-1].command
        self.ends_home = self.last in (MAV_CMD_NAV_RETURN_TO_LAUNCH, MAV_CMD_NAV_LAND)
        self.events = v.events()
        self.started = time.monotonic()
        self.phase = Phase.CLIMB
        self.takeover: asyncio.Task | None = None  # our routed return replacing the vehicle's own RTL
        self.failsafe_pending = False  # a failsafe was reported: is its RTL to be routed?
        self.rtl_sent = False
        self.aborted: str | None = None
        self.max_seq = 0
        self.auto_at = 0.0

    async def fly(self) -> None:
        v, n, report = self.v, self.n, self.report
        battery0: float | None = None
        alt = takeoff_alt_m(self.mission, v.config.takeoff_alt_m)
        self.say(f"{v.drone_id}: arming (waiting for pre-arm checks)")
        # GUIDED before arming: a vehicle that ended its last sortie in AUTO refuses to arm
        # there ("Arm: Mode not armable").
        await v.action.set_mode("GUIDED")
        await v.action.arm()
        battery0 = v.state.battery_remaining_pct
        self.say(f"{v.drone_id}: armed; taking off to {alt:.0f} m")
        v.retask.pending_seq = 1  # an overwatch during the climb resumes the sortie from item 1
        try:
            await v.action.takeoff(alt, wait=False)
            await _wait_climb_or_retask(v, alt)
            await self.take_transitions()
        finally:
            v.retask.pending_seq = None
        self.auto_at = time.time()  # mode changes before this were ours and are already said
        async with EnergyWatch(v):
            while self.phase is not Phase.LANDED:
                self.note(await _next_event(self.events, v, "during the sortie"))
                await self.take_transitions()
        report.duration_s = time.monotonic() - self.started
        if battery0 is not None and v.state.battery_remaining_pct is not None:
            report.battery_used_pct = battery0 - v.state.battery_remaining_pct
        max_seq = self.max_seq
        flown = (max_seq >= n - 1 if self.ends_home else v.state.last_reached_seq >= n - 1) \
            or report.items_reached >= n - 1
        if self.ends_home and max_seq >= n - 1:
            report.items_reached = n - 1
        report.flown = flown and self.aborted is None
        if not report.flown:
            why = self.aborted or f"landed after item {max(max_seq - 1, report.items_reached)} of {n - 1}"
            raise SortieAborted(f"sortie {self.mission.name!r} not completed: {why}", drone_id=v.drone_id,
                                reasons=v.state.reasons(limit=3))
        v.emit(EventKind.SORTIE_DONE, report.summary())
        self.say(report.summary())

    def close(self) -> None:
        self.events.close()
        if self.takeover is not None and not self.takeover.done():
            self.takeover.cancel()  # the vehicle is down (or we gave up on the sortie): nothing left to route

    # ---- observing ------------------------------------------------------------------------
    def note(self, ev) -> None:
        """Keep the report and the pending failsafe up to date with the vehicle's state and event."""
        v, s, n, report = self.v, self.v.state, self.n, self.report
        if s.pose is not None:
            report.max_alt_m = max(report.max_alt_m, s.pose.alt_rel_m)
        if s.mode == "AUTO":
            self.max_seq = max(self.max_seq, s.mission_seq)
        if ev is None:
            return
        batt = f"{s.battery_remaining_pct:.0f} %" if s.battery_remaining_pct is not None else "?"
        alt_now = f"{s.pose.alt_rel_m:.1f} m" if s.pose else "?"
        if ev.kind == EventKind.ITEM_REACHED and ev.seq is not None:
            report.items_reached = max(report.items_reached, ev.seq)
            self.say(f"{v.drone_id}: item {ev.seq}/{n - 1} reached, alt {alt_now}, battery {batt}")
        elif ev.kind in _INCIDENT_EVENTS:
            report.incidents.append(f"{ev.kind.value}: {ev.detail}")
            self.say(f"{v.drone_id}: {ev.kind.value}: {ev.detail}")
            if ev.kind in (EventKind.FAILSAFE, EventKind.LOW_BATTERY) and self.aborted is None \
                    and self.max_seq < n - 1:
                self.aborted = ev.detail
            if ev.kind == EventKind.FAILSAFE:
                self.failsafe_pending = True  # decided once any routed return of ours gave way
        elif ev.kind == EventKind.MODE_CHANGED and ev.time_s >= self.auto_at:
            self.say(f"{v.drone_id}: mode {ev.detail}")

    def facts(self) -> Facts:
        v, s, n, takeover = self.v, self.v.state, self.n, self.takeover
        return Facts(
            retasked=v.retask.active is not None, in_auto=s.mode == "AUTO",
            failsafe_pending=self.failsafe_pending, vehicle_returning=s.mode not in ("AUTO", "GUIDED"),
            routing=takeover is not None and not takeover.done(), routed_before=takeover is not None,
            routed_gave_way=takeover is not None and takeover.done() and takeover.result() is None,
            failsafe_return_crosses=_needs_routed_return(v),
            on_mission_return_crossing=(self.last == MAV_CMD_NAV_RETURN_TO_LAUNCH and s.mode == "AUTO"
                                        and s.mission_seq == n - 1 and _return_crosses_no_fly(v)),
            last_item_reached=not self.ends_home and not self.rtl_sent and s.last_reached_seq >= n - 1,
            return_crosses=_return_crosses_no_fly(v),
            landed=s.link_ok and not s.armed, timed_out=time.monotonic() - self.started > self.timeout_s)

    async def take_transitions(self) -> None:
        """Take transitions until none applies (each action changes what the next facts say)."""
        for _ in range(len(TRANSITIONS)):
            t = next_transition(self.phase, self.facts())
            if t is None:
                return
            log.debug("%s: %s -> %s (%s)", self.v.drone_id, self.phase.value, t.target.value, t.when)
            self.phase = t.target
            if t.action:
                await getattr(self, t.action)()
            if self.phase is Phase.LANDED:
                return

    # ---- what the transitions do ----------------------------------------------------------
    async def wait_for_overwatch(self) -> None:
        self.say(f"{self.v.drone_id}: retasked while taking off; the sortie starts when the overwatch ends")

    async def start_mission(self) -> None:
        v = self.v
        if v.state.mission_seq > 1:
            await v.mission.set_current(1)
        await v.action.start_mission()
        self.say(f"{v.drone_id}: AUTO, flying {self.n - 1} items")

    async def _route(self) -> None:
        self.takeover = asyncio.create_task(_routed_return(self.v), name=f"{self.v.drone_id}-routed-return")

    async def route_failsafe_return(self) -> None:
        self.failsafe_pending = False
        # the vehicle's own RTL would fly straight through a no-fly zone
        self.say(f"{self.v.drone_id}: taking over the failsafe return to route it round the no-fly zones")
        await self._route()

    async def accept_failsafe_return(self) -> None:
        # A routed return of ours that found no way round returned () and its plain RTL stands.
        self.failsafe_pending = False

    async def route_mission_return(self) -> None:
        # the mission's own RTL item flies the straight line home
        self.say(f"{self.v.drone_id}: the mission's return would cross a no-fly zone; flying it round")
        await self._route()

    async def route_home(self) -> None:
        self.say(f"{self.v.drone_id}: last item reached; returning to launch")
        self.rtl_sent = True
        if self.takeover is None:
            await self._route()

    async def command_rtl(self) -> None:
        self.say(f"{self.v.drone_id}: last item reached; returning to launch")
        self.rtl_sent = True
        await self.v.action.rtl()

    async def give_up(self) -> None:
        # a return round the zones is flown to its RTL before we give up on the sortie
        # (cancelled half-way it would leave the drone hovering in GUIDED)
        v, timeout_s = self.v, self.timeout_s
        if self.takeover is not None:
            await self.takeover
        elif _return_crosses_no_fly(v):
            await _routed_return(v)
        else:
            await v.action.rtl()
        self.say(f"{v.drone_id}: sortie took longer than {timeout_s:.0f} s; returning, watching until it "
                 f"has landed")
        await stay_until_landed(v, self.say, self.events)
        raise SortieAborted(f"sortie took longer than {timeout_s:.0f} s; RTL commanded, landed",
                            drone_id=v.drone_id, reasons=v.state.reasons(limit=3))


_INCIDENT_EVENTS = (EventKind.FAILSAFE, EventKind.LOW_BATTERY, EventKind.LINK_LOST, EventKind.LINK_REGAINED)


async def stay_until_landed(v: "Vehicle", say: Progress, events=None, timeout_s: float = 1800.0) -> None:
    """Keep watching a vehicle that is on its way down (RTL, LAND, a failsafe) until it has landed
    and disarmed, saying what it does: an operator must not lose its telemetry while it flies home.
    Raises FlightTimeout if it has not disarmed within `timeout_s` (vehicle time does not matter:
    a real flight home is minutes)."""
    own = events is None
    events = events if events is not None else v.events()
    deadline = time.monotonic() + timeout_s
    last_say = 0.0
    try:
        while not (v.state.link_ok and not v.state.armed):
            if time.monotonic() > deadline:
                raise FlightTimeout(f"still armed {timeout_s:.0f} s after the sortie ended", drone_id=v.drone_id,
                                    reasons=v.state.reasons(limit=3))
            ev = await _next_event(events, v, "while it was still flying home")
            s = v.state
            if ev is not None and ev.kind in (EventKind.MODE_CHANGED, EventKind.FAILSAFE, EventKind.LINK_LOST,
                                              EventKind.LINK_REGAINED, EventKind.LANDED, EventKind.DISARMED):
                say(f"{v.drone_id}: {ev.kind.value}: {ev.detail}")
            elif time.monotonic() - last_say >= 10.0 and s.pose is not None:
                last_say = time.monotonic()
                batt = f"{s.battery_remaining_pct:.0f} %" if s.battery_remaining_pct is not None else "?"
                say(f"{v.drone_id}: {s.mode}, alt {s.pose.alt_rel_m:.1f} m, battery {batt}")
    finally:
        if own:
            events.close()


async def _wait_climb_or_retask(v: "Vehicle", alt_m: float, timeout_s: float = 60.0) -> None:
    """Until the takeoff reached 95 % of `alt_m`, or an overwatch took the drone over mid-climb
    (it then climbs to its watch altitude in GUIDED; waiting for `alt_m` would time out)."""
    def done(s) -> bool:
        return v.retask.active is not None or (s.pose is not None and s.pose.alt_rel_m >= alt_m * 0.95)

    def abort(s) -> str | None:
        if not s.armed:
            return "vehicle disarmed"
        return None if s.mode == "GUIDED" else f"vehicle left GUIDED for {s.mode}"
    await v.wait_until(done, timeout_s, what=f"takeoff to {alt_m:.0f} m", abort=abort)


def _needs_routed_return(v: "Vehicle") -> bool:
    """Is the vehicle returning by itself (failsafe RTL) on a straight line through a no-fly zone
    that it cannot plan round, while we can still command it?"""
    return v.state.mode in ("RTL", "SMART_RTL") and _return_crosses_no_fly(v)


def _return_crosses_no_fly(v: "Vehicle") -> bool:
    """Would the straight line home from here cross a no-fly zone the vehicle cannot plan round
    (and can we still command it)?"""
    fa, s = v.fence_avoidance, v.state
    if fa is None or fa.onboard or not s.link_ok or s.pose is None or s.home is None:
        return False
    return fa.return_crosses((s.pose.lat, s.pose.lon), s.home[:2])


async def _routed_return(v: "Vehicle") -> tuple[tuple[float, float], ...] | None:
    """The points flown round the zones (() for a plain RTL: no way round), None if it gave way."""
    try:
        return await v.action.return_home()
    except FlightError as exc:
        log.error("%s: could not route the return round the no-fly zones: %s", v.drone_id, exc)
        return None


async def _next_event(events, v: "Vehicle", closed_when: str):
    """The vehicle's next event, or None after a second without one (so loops re-check state)."""
    try:
        return await asyncio.wait_for(events.__anext__(), 1.0)
    except asyncio.TimeoutError:
        return None
    except StopAsyncIteration:
        raise FlightError(f"vehicle closed {closed_when}", drone_id=v.drone_id) from None
