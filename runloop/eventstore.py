"""Everything a run did, in one SQLite file in the run dir (`events.sqlite`).

Tables: `meta` (scenario, plan summary, start/end), `events` (typed run events: incident truth,
detections, alerts, acks, sorties, faults, failsafes ...), `poses` (each drone ~1 Hz of scenario
time), `units` (each rider's location messages). The report is built from this file alone, so
`patrol report RUN_DIR` works on a finished run without anything else.

Times: `t_s` is scenario time (the simulator's clock); `wall_ts` is Unix time.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runloop.errors import RunError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, t_s REAL NOT NULL, wall_ts REAL NOT NULL,
    kind TEXT NOT NULL, subject TEXT NOT NULL DEFAULT '', data TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS events_kind ON events(kind);
CREATE TABLE IF NOT EXISTS poses (
    drone_id TEXT NOT NULL, t_s REAL NOT NULL, lat REAL, lon REAL, alt_m REAL,
    mode TEXT, battery_pct REAL, armed INTEGER);
CREATE INDEX IF NOT EXISTS poses_drone ON poses(drone_id, t_s);
CREATE TABLE IF NOT EXISTS units (
    unit_id TEXT NOT NULL, t_s REAL NOT NULL, lat REAL, lon REAL, status TEXT);
"""

DB_NAME = "events.sqlite"


@dataclass(frozen=True, slots=True)
class RunEvent:
    t_s: float
    wall_ts: float
    kind: str
    subject: str
    data: dict[str, Any]


class EventStore:
    """Append-only run record. Writes are committed at most every `commit_every_s` wall seconds
    and on close, so recording costs little on a busy event loop."""

    def __init__(self, run_dir: Path, *, readonly: bool = False, commit_every_s: float = 0.5):
        self.path = Path(run_dir) / DB_NAME
        if readonly and not self.path.exists():
            raise RunError(f"{run_dir} holds no run record ({DB_NAME} missing)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise RunError(f"cannot open the run record {self.path} (damaged or not an SQLite file?): {exc}") from exc
        self.commit_every_s = commit_every_s
        self._last_commit = time.monotonic()

    # ---------------------------------------------------------------- writing
    def _maybe_commit(self) -> None:
        if time.monotonic() - self._last_commit >= self.commit_every_s:
            self.commit()

    def commit(self) -> None:
        self.db.commit()
        self._last_commit = time.monotonic()

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value, default=str)))
        self.commit()

    def add(self, t_s: float, kind: str, subject: str = "", /, **data: Any) -> None:
        self.db.execute("INSERT INTO events(t_s, wall_ts, kind, subject, data) VALUES (?, ?, ?, ?, ?)",
                        (t_s, time.time(), kind, subject, json.dumps(data, default=str)))
        self._maybe_commit()

    def add_pose(self, drone_id: str, t_s: float, lat: float, lon: float, alt_m: float, mode: str,
                 battery_pct: float | None, armed: bool) -> None:
        self.db.execute("INSERT INTO poses VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (drone_id, t_s, lat, lon, alt_m, mode, battery_pct, int(armed)))
        self._maybe_commit()

    def add_unit(self, unit_id: str, t_s: float, lat: float, lon: float, status: str) -> None:
        self.db.execute("INSERT INTO units VALUES (?, ?, ?, ?, ?)", (unit_id, t_s, lat, lon, status))
        self._maybe_commit()

    def close(self) -> None:
        try:
            self.db.commit()
        finally:
            self.db.close()

    # ---------------------------------------------------------------- reading
    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Every row of a query; a damaged file (truncated, overwritten) is a RunError naming it."""
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise RunError(f"the run record {self.path} is damaged and cannot be read: {exc}") from exc

    def meta(self, key: str, default: Any = None) -> Any:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        if not rows:
            return default
        try:
            return json.loads(rows[0][0])
        except ValueError as exc:
            raise RunError(f"the run record {self.path} is damaged: meta {key!r} is not JSON ({exc})") from exc

    def events(self, *kinds: str) -> Iterator[RunEvent]:
        if kinds:
            marks = ",".join("?" * len(kinds))
            rows = self._rows(f"SELECT t_s, wall_ts, kind, subject, data FROM events WHERE kind IN ({marks}) "
                              "ORDER BY id", kinds)
        else:
            rows = self._rows("SELECT t_s, wall_ts, kind, subject, data FROM events ORDER BY id")
        for t_s, wall_ts, kind, subject, data in rows:
            try:
                payload = json.loads(data)
            except ValueError as exc:
                raise RunError(f"the run record {self.path} is damaged: a {kind} event is not JSON ({exc})") from exc
            yield RunEvent(t_s, wall_ts, kind, subject, payload)

    def poses(self) -> dict[str, list[tuple[float, float, float, float, str, float | None, bool]]]:
        out: dict[str, list] = {}
        for d, t, lat, lon, alt, mode, batt, armed in self._rows(
                "SELECT drone_id, t_s, lat, lon, alt_m, mode, battery_pct, armed FROM poses ORDER BY drone_id, t_s"):
            out.setdefault(d, []).append((t, lat, lon, alt, mode, batt, bool(armed)))
        return out

    def unit_tracks(self) -> dict[str, list[tuple[float, float, float, str]]]:
        out: dict[str, list] = {}
        for u, t, lat, lon, status in self._rows(
                "SELECT unit_id, t_s, lat, lon, status FROM units ORDER BY unit_id, t_s"):
            out.setdefault(u, []).append((t, lat, lon, status))
        return out
