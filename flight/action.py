"""`vehicle.action`: commands that change what the vehicle does. Each returns once the vehicle
has confirmed (COMMAND_ACK and, for modes, its HEARTBEAT) or raises with the vehicle's reason."""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from common.modes import COPTER_MODES, CopterMode
from flight.errors import ArmingError, CommandRejected, FlightError, FlightTimeout, ModeChangeError
from flight.events import EventKind
from flight.link import mav

if TYPE_CHECKING:
    from flight.core import VehicleCore

# Modes in which ArduCopter follows the pilot's throttle stick: with nobody on the sticks the
# vehicle sinks (seen in SITL: CIRCLE with throttle low descended into the ground).
PILOT_MODES = {"STABILIZE", "ACRO", "ALT_HOLD", "LOITER", "CIRCLE", "POSHOLD", "SPORT", "DRIFT", "FLOWHOLD"}


# what ArduPilot says first when it starts (../shared/ardupilot/BEHAVIOUR.md start-up texts)
_BOOT_TEXTS = ("Calibrating barometer", "ArduPilot Ready", "Barometer 1 calibration complete", "Initialising")


class Action:
    def __init__(self, vehicle: "VehicleCore") -> None:
        self._v = vehicle
        self._returning = False
        self.rebooted_at = 0.0  # time.time() of the last reboot we commanded: texts before it are stale

    async def set_mode(self, mode: str, *, timeout_s: float = 5.0, attended: bool = False) -> None:
        """Switch flight mode by MAV_CMD_DO_SET_MODE, confirmed by the vehicle's HEARTBEAT.

        Stick-following modes (LOITER, CIRCLE, ...) need `attended=True`: they are only safe
        with a pilot on the sticks.
        """
        v = self._v
        name = mode.upper()
        if name not in COPTER_MODES:
            raise ModeChangeError(f"unknown ArduCopter mode {mode!r}", drone_id=v.drone_id)
        if name in PILOT_MODES and not attended and v.state.armed:
            raise ModeChangeError(f"{name} follows the pilot's throttle stick; use GUIDED for an unattended "
                                  "hold, or pass attended=True", drone_id=v.drone_id)
        custom = COPTER_MODES[name]
        if v.state.custom_mode == custom:
            return
        v.note_commanded_mode(custom)
        try:
            await v.command_long(mav.MAV_CMD_DO_SET_MODE, mav.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, custom,
                                 what=f"mode {name}")
        except CommandRejected as exc:
            raise ModeChangeError(f"vehicle refused mode {name}", drone_id=v.drone_id, reasons=exc.reasons) from exc
        except FlightTimeout:
            pass  # the ACK may be lost; the HEARTBEAT decides
        try:
            await v.wait_mode(name, timeout_s=timeout_s)
        except FlightTimeout as exc:
            raise ModeChangeError(f"vehicle did not enter {name} (still {v.state.mode})",
                                  drone_id=v.drone_id, reasons=exc.reasons) from exc

    async def arm(self, *, timeout_s: float = 90.0, retry_interval_s: float = 2.0) -> None:
        """Arm, waiting for pre-arm checks to pass; ArmingError carries the vehicle's 'PreArm:' reasons."""
        v = self._v
        if v.state.armed:
            return
        deadline = time.monotonic() + timeout_s
        last: FlightError | None = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                await v.wait_armable(timeout_s=left)
                await v.command_long(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1, error=ArmingError, what="arm")
                await v.wait_until(lambda s: s.armed, 3.0, what="HEARTBEAT showing armed")
                return
            except (ArmingError, FlightTimeout) as exc:
                last = exc
                if time.monotonic() + retry_interval_s >= deadline:
                    break
                await asyncio.sleep(retry_interval_s)
        if isinstance(last, ArmingError):
            raise ArmingError(last.command, last.result, f"vehicle refused to arm for {timeout_s:.0f} s",
                              drone_id=v.drone_id, reasons=last.reasons or v.state.reasons(limit=4))
        raise FlightTimeout(f"vehicle not armable within {timeout_s:.0f} s", drone_id=v.drone_id,
                            reasons=(last.reasons if last else ()) or v.state.reasons(limit=4))

    async def disarm(self, *, force: bool = False) -> None:
        v = self._v
        if not v.state.armed:
            return
        await v.command_long(mav.MAV_CMD_COMPONENT_ARM_DISARM, 0, 21196 if force else 0, what="disarm")
        await v.wait_until(lambda s: not s.armed, 5.0, what="HEARTBEAT showing disarmed")

    async def takeoff(self, alt_m: float, *, wait: bool = True, timeout_s: float = 60.0) -> None:
        """GUIDED, armed takeoff to `alt_m` above home; with `wait`, returns at 95 % of it."""
        v = self._v
        await self.set_mode("GUIDED")
        if not v.state.armed:
            await self.arm()
        await v.command_long(mav.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, float("nan"), 0, 0, alt_m, what=f"takeoff to {alt_m} m")
        if wait:
            def abort(s) -> str | None:
                if not s.armed:
                    return "vehicle disarmed"
                return None if s.mode == "GUIDED" else f"vehicle left GUIDED for {s.mode}"
            await v.wait_altitude(alt_m * 0.95, alt_m + 5.0, timeout_s=timeout_s, abort=abort)

    async def start_mission(self) -> None:
        """AUTO: the vehicle flies the uploaded mission from its current item."""
        v = self._v
        if not v.state.armed:
            raise FlightError("start_mission needs an armed, airborne vehicle (take off first)", drone_id=v.drone_id)
        await self.set_mode("AUTO")

    async def rtl(self) -> None:
        await self.set_mode("RTL")

    async def return_home(self) -> tuple[tuple[float, float], ...]:
        """RTL that never crosses the sortie fence's no-fly zones.

        When the vehicle plans round them itself (or there are none, or the line to where RTL
        goes - home or the nearest rally point - is clear) this is plain RTL. Otherwise the
        controller flies GUIDED through the points of a path round them to that destination, at
        the current altitude, then RTL from the last one (`FenceAvoidance.return_legs`: over the
        destination itself if RTL from the last turn would head for another rally point).
        Returns the points flown under controller guidance (empty for plain RTL).
        """
        v = self._v
        fa = v.fence_avoidance
        s = v.state
        if fa is None or fa.onboard or s.pose is None or s.home is None:
            await self.rtl()
            return ()
        if self._returning:
            return ()  # one routed return at a time (energy watch and a failsafe may both ask)
        here, home = (s.pose.lat, s.pose.lon), s.home[:2]
        try:
            legs = fa.return_legs(here, home)
        except FlightError as exc:
            # a battery that will not wait: home straight is better than not at all; say so
            v.emit(EventKind.VEHICLE_TEXT, f"no way home round the no-fly zones ({exc.detail}); plain RTL")
            await self.rtl()
            return ()
        if not legs:
            await self.rtl()
            return ()
        alt_m = max(s.pose.alt_rel_m, 5.0)
        v.emit(EventKind.RETURN_ROUTED, f"returning round the no-fly zones through {len(legs)} point(s)")
        self._returning = True
        try:
            for lat, lon in legs:
                await self.goto(lat, lon, alt_m)
                # a pilot taking over or the vehicle's own failsafe (LAND, RTL) ends the routed
                # return at once rather than after the leg timeout
                await v.wait_position(lat, lon, within_m=3.0, timeout_s=v.config.avoidance.leg_timeout_s,
                                      abort=_left_guided())
            await self.rtl()
        finally:
            self._returning = False
        return legs

    async def reboot(self, *, timeout_s: float = 90.0) -> None:
        """Reboot the autopilot (disarmed only) and wait until it is back with a home position:
        some parameters (OA_TYPE) only take effect at boot."""
        v = self._v
        if v.state.armed:
            raise FlightError("will not reboot an armed vehicle", drone_id=v.drone_id)
        booted_s = v.state.time_boot_s
        losses = v.link_losses
        asked = time.time()
        await v.command_long(mav.MAV_CMD_PREFLIGHT_REBOOT_SHUTDOWN, 1, what="reboot autopilot")
        v.state.home = None  # the rebooted vehicle sets (and sends) home again once it has a fix

        def restarted(st) -> bool:
            # its start-up texts, its boot clock starting again, or (SITL over TCP) the link dropping
            boot_text = any(t.time_s >= asked and t.text.startswith(_BOOT_TEXTS) for t in st.texts)
            return st.link_ok and (boot_text or st.time_boot_s < booted_s - 1.0 or v.link_losses > losses)
        await v.wait_until(restarted, timeout_s, what="the vehicle to restart after the reboot command",
                           tolerate_link_loss=True)
        self.rebooted_at = asked
        # ... and it has a home again; stream rates were reset by the reboot
        deadline = time.monotonic() + timeout_s
        while v.state.home is None:
            v.request_streams()
            v.request_message(mav.MAVLINK_MSG_ID_HOME_POSITION)
            try:
                await v.wait_until(lambda st: st.home is not None, 2.0, what="home after the reboot",
                                   tolerate_link_loss=True)
            except FlightTimeout:
                if time.monotonic() > deadline:
                    raise

    async def land(self) -> None:
        await self.set_mode("LAND")

    async def hold(self) -> None:
        """Stop and hover where it is, in GUIDED (never LOITER: that follows the throttle stick)."""
        v = self._v
        if v.state.mode != "GUIDED":
            await self.set_mode("GUIDED")  # entering GUIDED stops the vehicle at its position
        elif v.state.pose is not None:
            p = v.state.pose
            await self.goto(p.lat, p.lon, p.alt_rel_m)

    async def goto(self, lat: float, lon: float, alt_m: float, *, speed_m_s: float = -1.0) -> None:
        """Fly to a point and hold there: DO_REPOSITION by COMMAND_INT (ArduCopter refuses it by COMMAND_LONG)."""
        v = self._v
        v.note_commanded_mode(CopterMode.GUIDED)
        await v.command_int(mav.MAV_CMD_DO_REPOSITION, params=(speed_m_s, mav.MAV_DO_REPOSITION_FLAGS_CHANGE_MODE, 0,
                                                               float("nan")),
                            lat=lat, lon=lon, alt_m=alt_m, what=f"reposition to {lat:.6f},{lon:.6f}")

    async def set_roi(self, lat: float, lon: float, alt_m: float = 0.0) -> None:
        """Point the vehicle (and camera) at a location."""
        await self._v.command_int(mav.MAV_CMD_DO_SET_ROI_LOCATION, lat=lat, lon=lon, alt_m=alt_m,
                                  what="ROI on location")

    async def clear_roi(self) -> None:
        await self._v.command_long(mav.MAV_CMD_DO_SET_ROI_NONE, what="clear ROI")

    async def set_speed(self, speed_m_s: float) -> None:
        """Ground speed for waypoint navigation (DO_CHANGE_SPEED)."""
        await self._v.command_long(mav.MAV_CMD_DO_CHANGE_SPEED, 1, speed_m_s, -1, what=f"speed {speed_m_s} m/s")


def _left_guided():
    """An abort for waits in GUIDED: once the vehicle has been seen in GUIDED, any other mode
    (its heartbeat may still show the old mode just after the command) ends the wait."""
    seen = False

    def check(st) -> str | None:
        nonlocal seen
        if st.mode == "GUIDED":
            seen = True
            return None
        return f"the vehicle left GUIDED for {st.mode}" if seen else None
    return check
