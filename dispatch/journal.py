"""SQLite journal + outbox: every alert and incident state change is written here first.

The controller changes state only inside `Journal.transaction()`; the same transaction enqueues
the MQTT messages that announce the change (outbox). A publisher drains the outbox after the
commit and deletes rows once the broker has PUBACKed them. After a crash (kill -9) nothing that was
committed is lost: unpublished rows are published on start, and alerts still waiting for the
unit's answer are published again with the same alert_id (riders de-duplicate by it).
WAL + synchronous=NORMAL survives a process crash, which is the failure we design for.
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Collection, Iterator

from dispatch.errors import DispatchError, JournalError
from dispatch.schemas import IncidentRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    snapshot BLOB,
    closed INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    retained_cleared INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    status TEXT NOT NULL,
    issued_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    message BLOB NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_status ON alerts(status);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS linked_reports (
    report_id TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS units (
    unit_id TEXT PRIMARY KEY,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    last_seen REAL NOT NULL,
    status TEXT NOT NULL
);
"""

@dataclass(frozen=True, slots=True)
class OutboxRow:
    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


class AlertStatus(StrEnum):
    """Where one alert to one unit is; kept in the journal's alerts table."""

    ISSUED = "issued"  # sent, the unit's answer awaited
    ACCEPTED = "accepted"
    ARRIVED = "arrived"
    DECLINED = "declined"
    TIMED_OUT = "timed_out"  # no answer in time: the unit was stood down
    CANCELLED = "cancelled"  # the unit was stood down (reassigned, or the incident closed)
    RESOLVED = "resolved"


OPEN_ALERTS = frozenset({AlertStatus.ISSUED, AlertStatus.ACCEPTED, AlertStatus.ARRIVED})  # the unit still has it


@dataclass(frozen=True, slots=True)
class AlertRow:
    alert_id: str
    incident_id: str
    unit_id: str
    status: str  # an AlertStatus
    issued_at: float
    expires_at: float
    message: bytes


class Journal:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise DispatchError(f"cannot open dispatch journal {self.path}: {exc}") from exc
        self._depth = 0
        self.outbox_dirty = True  # something may be waiting to be published (checked on start too)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator["Journal"]:
        """All writes inside commit together (nested calls join the outer transaction)."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self._depth = 1
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            else:
                self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise JournalError(f"dispatch journal {self.path}: {exc}") from exc
        finally:
            self._depth = 0

    # incidents
    def put_incident(self, record: IncidentRecord, snapshot: bytes | None) -> None:
        self.db.execute(
            "INSERT INTO incidents(id, record, snapshot, closed, updated_at) VALUES (?,?,?,?,?) "
            "ON CONFLICT(id) DO UPDATE SET record=excluded.record, "
            "snapshot=COALESCE(excluded.snapshot, incidents.snapshot), closed=excluded.closed, "
            "updated_at=excluded.updated_at",
            (record.incident.id, json.dumps(record.model_dump(mode="json", by_alias=True)), snapshot,
             int(record.closed), time.time()))

    def open_incidents(self) -> list[tuple[IncidentRecord, bytes | None]]:
        rows = self.db.execute("SELECT record, snapshot FROM incidents WHERE closed=0").fetchall()
        return [(IncidentRecord.model_validate(json.loads(r)), s) for r, s in rows]

    def closed_to_clear(self, closed_before: float) -> list[str]:
        """Closed incidents whose retained state is old enough to remove from the broker."""
        rows = self.db.execute("SELECT id FROM incidents WHERE closed=1 AND retained_cleared=0 AND updated_at < ?",
                               (closed_before,)).fetchall()
        return [r[0] for r in rows]

    def mark_retained_cleared(self, incident_id: str) -> None:
        self.db.execute("UPDATE incidents SET retained_cleared=1 WHERE id=?", (incident_id,))

    def incident_exists(self, incident_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM incidents WHERE id=?", (incident_id,)).fetchone() is not None

    def link_report(self, report_id: str, incident_id: str) -> None:
        """A vision report folded into an open incident (kept after it closes, so late reports stay folded)."""
        self.db.execute("INSERT OR REPLACE INTO linked_reports (report_id, incident_id) VALUES (?, ?)",
                        (report_id, incident_id))

    def linked_incident(self, report_id: str) -> str | None:
        row = self.db.execute("SELECT incident_id FROM linked_reports WHERE report_id=?", (report_id,)).fetchone()
        return row[0] if row else None

    def get_incident(self, incident_id: str) -> dict | None:
        row = self.db.execute("SELECT record FROM incidents WHERE id=?", (incident_id,)).fetchone()
        return json.loads(row[0]) if row else None

    # alerts
    def put_alert(self, row: AlertRow) -> None:
        self.db.execute(
            "INSERT INTO alerts(alert_id, incident_id, unit_id, status, issued_at, expires_at, message, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(alert_id) DO UPDATE SET status=excluded.status, "
            "updated_at=excluded.updated_at",
            (row.alert_id, row.incident_id, row.unit_id, row.status, row.issued_at, row.expires_at,
             row.message, time.time()))

    def set_alert_status(self, alert_id: str, status: str) -> None:
        self.db.execute("UPDATE alerts SET status=?, updated_at=? WHERE alert_id=?", (status, time.time(), alert_id))

    def alerts(self, statuses: Collection[str] | None = None) -> list[AlertRow]:
        sql = "SELECT alert_id, incident_id, unit_id, status, issued_at, expires_at, message FROM alerts"
        args: tuple = ()
        if statuses:
            sql += f" WHERE status IN ({','.join('?' * len(statuses))})"
            args = tuple(statuses)
        return [AlertRow(*r) for r in self.db.execute(sql + " ORDER BY issued_at", args).fetchall()]

    def get_alert(self, alert_id: str) -> AlertRow | None:
        r = self.db.execute("SELECT alert_id, incident_id, unit_id, status, issued_at, expires_at, message "
                            "FROM alerts WHERE alert_id=?", (alert_id,)).fetchone()
        return AlertRow(*r) if r else None

    # outbox
    def enqueue(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.outbox_dirty = True
        self.db.execute("INSERT INTO outbox(topic, payload, qos, retain, created_at) VALUES (?,?,?,?,?)",
                        (topic, payload, qos, int(retain), time.time()))

    def pending(self, limit: int = 200) -> list[OutboxRow]:
        rows = self.db.execute("SELECT seq, topic, payload, qos, retain FROM outbox ORDER BY seq LIMIT ?",
                               (limit,)).fetchall()
        return [OutboxRow(s, t, bytes(p), q, bool(r)) for s, t, p, q, r in rows]

    def mark_published(self, seqs: list[int]) -> None:
        if seqs:
            self.db.executemany("DELETE FROM outbox WHERE seq=?", [(s,) for s in seqs])

    # units (last known positions so assignment works straight after a restart)
    def save_units(self, rows: list[tuple[str, float, float, float, str]]) -> None:
        if rows:
            with self.transaction():
                self.db.executemany(
                    "INSERT INTO units(unit_id, lat, lon, last_seen, status) VALUES (?,?,?,?,?) "
                    "ON CONFLICT(unit_id) DO UPDATE SET lat=excluded.lat, lon=excluded.lon, "
                    "last_seen=excluded.last_seen, status=excluded.status", rows)

    def units(self) -> list[tuple[str, float, float, float, str]]:
        return self.db.execute("SELECT unit_id, lat, lon, last_seen, status FROM units").fetchall()
