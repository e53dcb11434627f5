"""ArduCopter's parameter table, under the 4.7+ names or the 4.5/4.6 names fleets still run.

The table (names, defaults, MAV_PARAM_TYPE, order) is what a real ArduCopter 4.8.0-dev SITL
listed (data/arducopter_4.8_params.tsv). Values are stored under the 4.7+ names in SI units;
with style "4.5" the renamed parameters are shown under their old names and units (WPNAV_SPEED
in cm/s, RTL_ALT in cm, ...) and converted on the way in and out.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from importlib import resources

from sim import SimError

MAV_PARAM_TYPE_REAL32 = 9
_INT_TYPES = {1: (0, 255), 2: (-128, 127), 3: (0, 65535), 4: (-32768, 32767), 5: (0, 2**32 - 1),
              6: (-(2**31), 2**31 - 1)}

# 4.7+ name -> (4.5/4.6 name, factor from the SI value to the old unit, old MAV_PARAM_TYPE)
RENAMED_4_5: dict[str, tuple[str, float, int]] = {
    "MAV_SYSID": ("SYSID_THISMAV", 1.0, 4),
    "MAV_GCS_SYSID": ("SYSID_MYGCS", 1.0, 4),
    "WP_SPD": ("WPNAV_SPEED", 100.0, 9),
    "WP_SPD_UP": ("WPNAV_SPEED_UP", 100.0, 9),
    "WP_SPD_DN": ("WPNAV_SPEED_DN", 100.0, 9),
    "WP_ACC": ("WPNAV_ACCEL", 100.0, 9),
    "WP_ACC_Z": ("WPNAV_ACCEL_Z", 100.0, 9),
    "WP_ACC_CNR": ("WPNAV_ACCEL_C", 100.0, 9),
    "WP_RADIUS_M": ("WPNAV_RADIUS", 100.0, 9),
    "WP_JERK": ("WPNAV_JERK", 1.0, 9),
    "WP_RFND_USE": ("WPNAV_RFND_USE", 1.0, 2),
    "WP_TER_MARGIN": ("WPNAV_TER_MARGIN", 1.0, 9),
    "LOIT_SPEED_MS": ("LOIT_SPEED", 100.0, 9),
    "LOIT_ACC_MAX_M": ("LOIT_ACC_MAX", 100.0, 9),
    "LOIT_BRK_ACC_M": ("LOIT_BRK_ACCEL", 100.0, 9),
    "LOIT_BRK_JRK_M": ("LOIT_BRK_JERK", 100.0, 9),
    "CIRCLE_RADIUS_M": ("CIRCLE_RADIUS", 100.0, 9),
    "RTL_ALT_M": ("RTL_ALT", 100.0, 6),
    "RTL_ALT_FINAL_M": ("RTL_ALT_FINAL", 100.0, 4),
    "RTL_CLIMB_MIN_M": ("RTL_CLIMB_MIN", 100.0, 4),
    "RTL_SPEED_MS": ("RTL_SPEED", 100.0, 4),
    "LAND_SPD_MS": ("LAND_SPEED", 100.0, 4),
    "LAND_SPD_HIGH_MS": ("LAND_SPEED_HIGH", 100.0, 4),
    "LAND_ALT_LOW_M": ("LAND_ALT_LOW", 100.0, 4),
    "PILOT_ACC_Z": ("PILOT_ACCEL_Z", 100.0, 4),
    "PILOT_SPD_UP": ("PILOT_SPEED_UP", 100.0, 4),
    "PILOT_SPD_DN": ("PILOT_SPEED_DN", 100.0, 4),
    "PILOT_TKO_ALT_M": ("PILOT_TKOFF_ALT", 100.0, 9),
}
PARAM_STYLES = ("4.7", "4.5")

# Groups ArduPilot lists only while their enable parameter is non-zero (AP_PARAM_FLAG_ENABLE):
# enable name -> [(name, default, MAV_PARAM_TYPE)], listed right after the enable parameter.
# OA_ (AP_OAPathPlanner): MARGIN_MAX is Dijkstra's distance from the fence; DB_ the obstacle database.
ENABLE_GROUPS: dict[str, list[tuple[str, float, int]]] = {
    "OA_TYPE": [
        ("OA_MARGIN_MAX", 5.0, 9), ("OA_DB_SIZE", 100.0, 4), ("OA_DB_EXPIRE", 10.0, 2),
        ("OA_DB_QUEUE_SIZE", 80.0, 4), ("OA_DB_OUTPUT", 1.0, 2), ("OA_DB_BEAM_WIDTH", 5.0, 9),
        ("OA_DB_RADIUS_MIN", 0.01, 9), ("OA_DB_DIST_MAX", 0.0, 9), ("OA_DB_ALT_MIN", 0.0, 9),
        ("OA_OPTIONS", 1.0, 4),
    ],
}
_HIDDEN_BY = {name: enable for enable, group in ENABLE_GROUPS.items() for name, _, _ in group}


@dataclass(slots=True)
class _Entry:
    name: str  # 4.7+ name
    value_si: float
    ptype: int


def _load_table() -> list[_Entry]:
    text = resources.files("sim.vehicles").joinpath("data/arducopter_4.8_params.tsv").read_text()
    rows = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value, ptype = line.split("\t")
        rows.append(_Entry(name, float(value), int(ptype)))
    return rows


_TABLE: list[_Entry] | None = None


def _to_float32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


class ParamStore:
    """One vehicle's parameters: lookup by wire name, set with type coercion, listing in order.

    >>> p = ParamStore("4.5")
    >>> p.get("WP_SPD"), p.wire_value("WPNAV_SPEED")
    (10.0, 1000.0)
    >>> p.set_wire("WPNAV_SPEED", 800.0)[0], p.get("WP_SPD")
    ('WPNAV_SPEED', 8.0)
    >>> p.wire_value("WP_SPD") is None
    True
    """

    def __init__(self, style: str = "4.7", overrides: dict[str, float] | None = None) -> None:
        global _TABLE
        if style not in PARAM_STYLES:
            raise SimError(f"unknown parameter style {style!r}; expected one of {', '.join(PARAM_STYLES)}")
        if _TABLE is None:
            _TABLE = _load_table()
        self.style = style
        self._entries = []
        for e in _TABLE:
            self._entries.append(_Entry(e.name, e.value_si, e.ptype))
            for name, default, ptype in ENABLE_GROUPS.get(e.name, ()):
                self._entries.append(_Entry(name, default, ptype))
        self._by_name = {e.name: e for e in self._entries}
        self._removed: set[str] = set()
        self._relist()
        for name, value in (overrides or {}).items():
            self.set(name, value)

    def _relist(self) -> None:
        """Recompute what the vehicle lists: hidden groups appear once their enable is non-zero."""
        # wire name -> (entry, factor, wire type)
        self._wire: dict[str, tuple[_Entry, float, int]] = {}
        self._wire_names: list[str] = []
        for e in self._entries:
            enable = _HIDDEN_BY.get(e.name)
            if e.name in self._removed or (enable is not None and (enable in self._removed
                                                                   or self._by_name[enable].value_si == 0)):
                continue
            if self.style == "4.5" and e.name in RENAMED_4_5:
                old, factor, ptype = RENAMED_4_5[e.name]
                self._wire[old] = (e, factor, ptype)
                self._wire_names.append(old)
            else:
                self._wire[e.name] = (e, 1.0, e.ptype)
                self._wire_names.append(e.name)
        self._index = {n: i for i, n in enumerate(self._wire_names)}

    def remove(self, name: str) -> None:
        """Leave a parameter (and any group it enables) out, as a firmware built without that
        feature does, e.g. OA_TYPE on boards too small for object avoidance."""
        if name not in self._by_name:
            raise SimError(f"no parameter {name} to remove")
        self._removed.add(name)
        self._relist()

    @property
    def count(self) -> int:
        return len(self._wire_names)

    def get(self, name: str) -> float:
        """The value of a 4.7+-named parameter in SI units (the simulator's own reads)."""
        return self._by_name[name].value_si

    def set(self, name: str, value: float) -> None:
        """Set a 4.7+-named parameter in SI units (simulator-internal, e.g. MAV_SYSID)."""
        entry = self._by_name.get(name)
        if entry is None:
            raise SimError(f"ArduCopter has no parameter {name}")
        entry.value_si = float(value)
        if name in ENABLE_GROUPS:
            self._relist()

    def wire_name_of(self, name: str) -> str:
        if self.style == "4.5" and name in RENAMED_4_5:
            return RENAMED_4_5[name][0]
        return name

    def index_of(self, wire_name: str) -> int | None:
        return self._index.get(wire_name)

    def wire_value(self, wire_name: str) -> float | None:
        """Value as a GCS sees it under `wire_name`, or None when this vehicle has no such name."""
        hit = self._wire.get(wire_name)
        if hit is None:
            return None
        entry, factor, ptype = hit
        return _coerce(entry.value_si * factor, ptype)

    def wire_type(self, wire_name: str) -> int:
        return self._wire[wire_name][2]

    def by_index(self, index: int) -> tuple[str, float, int] | None:
        if not 0 <= index < len(self._wire_names):
            return None
        name = self._wire_names[index]
        return name, self.wire_value(name), self.wire_type(name)  # type: ignore[return-value]

    def set_wire(self, wire_name: str, value: float) -> tuple[str, float, int] | None:
        """Apply a PARAM_SET; returns (name, stored value, type) or None for an unknown name."""
        hit = self._wire.get(wire_name)
        if hit is None:
            return None
        entry, factor, ptype = hit
        stored = _coerce(value, ptype)
        entry.value_si = stored / factor
        if entry.name in ENABLE_GROUPS:
            self._relist()  # ArduPilot invalidates its parameter count: the group appears / goes
        return wire_name, stored, ptype

    def names(self) -> list[str]:
        return list(self._wire_names)


def _coerce(value: float, ptype: int) -> float:
    if ptype in _INT_TYPES:
        lo, hi = _INT_TYPES[ptype]
        return float(min(hi, max(lo, round(value))))
    return _to_float32(value)
