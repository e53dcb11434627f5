"""Parameters, read and set by either generation of names.

ArduCopter 4.7 renamed several parameters and moved some from centimetres to metres
(WPNAV_SPEED cm/s -> WP_SPD m/s, RTL_ALT cm -> RTL_ALT_M, SYSID_THISMAV -> MAV_SYSID, ...).
Fleets in service still run 4.5/4.6. Callers may use either name; the value is always in the
units of the name the caller used, and is converted for the vehicle's generation, which is
found once per connection by asking for MAV_SYSID (a 4.5 vehicle answers PARAM_ERROR or nothing).
"""
from __future__ import annotations

import asyncio
import math
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flight.errors import ParamError

if TYPE_CHECKING:
    from flight.core import VehicleCore


@dataclass(frozen=True, slots=True)
class Rename:
    new: str       # 4.7+ name
    old: str       # 4.5/4.6 name
    old_per_new: float  # old value = new value * old_per_new (100 for m -> cm)


RENAMES: tuple[Rename, ...] = (
    Rename("MAV_SYSID", "SYSID_THISMAV", 1),
    Rename("MAV_GCS_SYSID", "SYSID_MYGCS", 1),
    Rename("WP_SPD", "WPNAV_SPEED", 100),
    Rename("WP_SPD_UP", "WPNAV_SPEED_UP", 100),
    Rename("WP_SPD_DN", "WPNAV_SPEED_DN", 100),
    Rename("WP_RADIUS_M", "WPNAV_RADIUS", 100),
    Rename("WP_ACC", "WPNAV_ACCEL", 100),
    Rename("WP_ACC_Z", "WPNAV_ACCEL_Z", 100),
    Rename("WP_ACC_CNR", "WPNAV_ACCEL_C", 100),
    Rename("WP_RFND_USE", "WPNAV_RFND_USE", 1),
    Rename("RTL_ALT_M", "RTL_ALT", 100),
    Rename("RTL_ALT_FINAL_M", "RTL_ALT_FINAL", 100),
    Rename("RTL_CLIMB_MIN_M", "RTL_CLIMB_MIN", 100),
    Rename("RTL_SPEED_MS", "RTL_SPEED", 100),
    Rename("CIRCLE_RADIUS_M", "CIRCLE_RADIUS", 100),
    Rename("LAND_SPD_MS", "LAND_SPEED", 100),
    Rename("LAND_SPD_HIGH_MS", "LAND_SPEED_HIGH", 100),
    Rename("LOIT_SPEED_MS", "LOIT_SPEED", 100),
)
_BY_NEW = {r.new: r for r in RENAMES}
_BY_OLD = {r.old: r for r in RENAMES}


def vehicle_name_and_factor(name: str, style: str) -> tuple[str, float]:
    """(name on a `style` vehicle, factor so that vehicle value = caller value * factor).

    >>> vehicle_name_and_factor("WP_SPD", "4.5")
    ('WPNAV_SPEED', 100)
    >>> vehicle_name_and_factor("RTL_ALT", "4.7")
    ('RTL_ALT_M', 0.01)
    >>> vehicle_name_and_factor("FS_GCS_ENABLE", "4.5")
    ('FS_GCS_ENABLE', 1)
    """
    name = name.upper()
    if style == "4.5" and name in _BY_NEW:
        r = _BY_NEW[name]
        return r.old, r.old_per_new
    if style != "4.5" and name in _BY_OLD:
        r = _BY_OLD[name]
        return r.new, 1 / r.old_per_new
    return name, 1


def _f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


class Params:
    """`vehicle.params`: get / set by name (either generation), with retries over a lossy link."""

    def __init__(self, vehicle: "VehicleCore") -> None:
        self._v = vehicle
        self.style: str | None = None  # "4.5" or "4.7", found on first use
        self._lock = asyncio.Lock()

    async def detect_style(self) -> str:
        if self.style is None:
            async with self._lock:
                if self.style is None:
                    if await self._read_raw("MAV_SYSID", missing_ok=True) is not None:
                        self.style = "4.7"
                    elif await self._read_raw("SYSID_THISMAV", missing_ok=True) is not None:
                        self.style = "4.5"
                    else:
                        raise ParamError("vehicle answers neither MAV_SYSID nor SYSID_THISMAV",
                                         drone_id=self._v.drone_id)
        return self.style

    async def get(self, name: str) -> float:
        """The value of `name`, in the units of `name` (WP_SPD m/s, WPNAV_SPEED cm/s)."""
        style = await self.detect_style()
        vname, factor = vehicle_name_and_factor(name, style)
        value = await self._read_raw(vname)
        return value / factor

    async def set(self, name: str, value: float) -> float:
        """Set `name` (units of `name`) and confirm from the vehicle's PARAM_VALUE echo."""
        style = await self.detect_style()
        vname, factor = vehicle_name_and_factor(name, style)
        got = await self._set_raw(vname, float(value) * factor)
        return got / factor

    async def _read_raw(self, name: str, missing_ok: bool = False) -> float | None:
        v = self._v
        lc = v.config.link
        pid = name.encode()
        with v.subscribe({"PARAM_VALUE", "PARAM_ERROR"}, lambda m: _pid(m) == name) as sub:
            for _ in range(lc.command_attempts):
                v.send("param_request_read", v.target_system, v.target_component, pid, -1)
                msg = await v.recv(sub, lc.command_timeout_s)
                if msg is None:
                    continue
                if msg.get_type() == "PARAM_ERROR":
                    if missing_ok:
                        return None
                    raise ParamError(f"vehicle has no parameter {name} (PARAM_ERROR {msg.error})",
                                     drone_id=v.drone_id)
                return float(msg.param_value)
        if missing_ok:
            return None
        raise ParamError(f"no answer reading parameter {name} ({lc.command_attempts} requests); "
                         "the vehicle may not have it", drone_id=v.drone_id)

    async def _set_raw(self, name: str, value: float) -> float:
        v = self._v
        lc = v.config.link
        started = time.time()
        want = _f32(value)
        with v.subscribe({"PARAM_VALUE", "PARAM_ERROR"}, lambda m: _pid(m) == name) as sub:
            for _ in range(lc.command_attempts):
                v.send("param_set", v.target_system, v.target_component, name.encode(), value, 9)  # REAL32
                deadline = time.monotonic() + lc.command_timeout_s
                while (left := deadline - time.monotonic()) > 0:
                    msg = await v.recv(sub, left)
                    if msg is None:
                        break
                    if msg.get_type() == "PARAM_ERROR":
                        raise ParamError(f"vehicle refused {name}={value:g} (PARAM_ERROR {msg.error})",
                                         drone_id=v.drone_id, reasons=v.state.reasons(started))
                    if math.isclose(msg.param_value, want, rel_tol=1e-6, abs_tol=1e-6):
                        return float(msg.param_value)
        raise ParamError(f"setting {name}={value:g} was not confirmed; the vehicle may not have it",
                         drone_id=v.drone_id, reasons=v.state.reasons(started))


def _pid(msg) -> str:
    pid = msg.param_id
    if isinstance(pid, bytes):
        pid = pid.decode("ascii", "replace")
    return pid.rstrip("\x00")
