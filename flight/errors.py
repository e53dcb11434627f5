"""One error family for everything that touches a vehicle.

Every error carries what the vehicle itself said when it refused (`reasons`: its recent
STATUSTEXT / pre-arm lines), so an operator reads "Arm: Need Position Estimate", not "failed".
"""
from __future__ import annotations

# MAV_RESULT names (common.xml), so messages say "DENIED" rather than "result 2".
MAV_RESULT_NAMES = {
    0: "ACCEPTED", 1: "TEMPORARILY_REJECTED", 2: "DENIED", 3: "UNSUPPORTED", 4: "FAILED",
    5: "IN_PROGRESS", 6: "CANCELLED", 7: "COMMAND_LONG_ONLY", 8: "COMMAND_INT_ONLY",
    9: "COMMAND_UNSUPPORTED_MAV_FRAME",
}

# MAV_MISSION_RESULT names (common.xml).
MAV_MISSION_RESULT_NAMES = {
    0: "ACCEPTED", 1: "ERROR", 2: "UNSUPPORTED_FRAME", 3: "UNSUPPORTED", 4: "NO_SPACE", 5: "INVALID",
    6: "INVALID_PARAM1", 7: "INVALID_PARAM2", 8: "INVALID_PARAM3", 9: "INVALID_PARAM4",
    10: "INVALID_PARAM5_X", 11: "INVALID_PARAM6_Y", 12: "INVALID_PARAM7", 13: "INVALID_SEQUENCE",
    14: "DENIED", 15: "OPERATION_CANCELLED",
}

MISSION_TYPE_NAMES = {0: "mission", 1: "fence", 2: "rally"}


class FlightError(Exception):
    """Root of every flight/ error. `reasons` are the vehicle's own recent texts, newest last."""

    def __init__(self, message: str, *, drone_id: str = "", reasons: tuple[str, ...] = ()) -> None:
        self.drone_id = drone_id
        self.reasons = tuple(reasons)
        self.detail = message
        text = f"{drone_id}: {message}" if drone_id else message
        if self.reasons:
            text += " (vehicle says: " + "; ".join(self.reasons) + ")"
        super().__init__(text)


class LinkError(FlightError):
    """The MAVLink connection could not be opened, or it broke."""


class UrlError(LinkError):
    """A connection URL that names no transport we know."""


class LinkLostError(LinkError):
    """No HEARTBEAT from the vehicle within the link timeout while we needed one."""


class FlightTimeout(FlightError, TimeoutError):
    """A wait_* or request that did not complete in time."""


class CommandRejected(FlightError):
    """A COMMAND_LONG / COMMAND_INT answered with a result other than ACCEPTED."""

    def __init__(self, command: int, result: int, message: str = "", **kw) -> None:
        self.command = command
        self.result = result
        name = MAV_RESULT_NAMES.get(result, str(result))
        super().__init__(message or f"command {command} rejected: {name}", **kw)


class ArmingError(CommandRejected):
    """The vehicle refused to arm; `reasons` hold its 'Arm:'/'PreArm:' lines."""


class ModeChangeError(FlightError):
    """The vehicle did not enter the requested flight mode."""


class MissionTransferError(FlightError):
    """A mission / fence / rally upload or download failed; `result` is the MISSION_ACK type if any."""

    def __init__(self, message: str, *, mission_type: int = 0, result: int | None = None,
                 seq: int | None = None, **kw) -> None:
        self.mission_type = mission_type
        self.result = result
        self.seq = seq
        super().__init__(f"{MISSION_TYPE_NAMES.get(mission_type, mission_type)} transfer: {message}", **kw)


    def left_with(self, outcome: str) -> "MissionTransferError":
        """Add what the vehicle holds after this failure (restored, cleared, or unknown)."""
        self.outcome = outcome
        self.args = (f"{self.args[0]}; {outcome}",)
        return self


class MissionMismatch(MissionTransferError):
    """The list read back differs from what ArduCopter keeps of what was sent; names the first
    differing item and field."""


class MissionNotStorable(MissionTransferError):
    """Items ArduCopter would refuse, or store as other numbers than sent; nothing was uploaded.
    `problems` name each item and why."""

    def __init__(self, problems: list[str], **kw) -> None:
        self.problems = list(problems)
        super().__init__("not uploaded: " + "; ".join(self.problems), **kw)


class ParamError(FlightError):
    """A parameter the vehicle does not have, or a set that did not take."""


class SortieAborted(FlightError):
    """A sortie ended without being flown to completion (failsafe, RTL, refused arm, ...)."""


class EnergyShortfall(SortieAborted):
    """A sortie refused before arming: the vehicle's battery cannot hold it (`.energy` has the figures)."""

    def __init__(self, message: str, *, energy=None, **kw) -> None:
        super().__init__(message, **kw)
        self.energy = energy
