"""Operator control of a running patrol over MQTT (docs/mqtt-api.md, "Operator commands").

`patrol/operator/commands` (operator -> controller, QoS 1), schema `patrol.operator-command/1`:

- `patrol_cells` {cells: [grid_id, ...]}: those cells go first: the next drones ready on their
  docks fly them (drones in the air finish their sorties);
- `pause_drone` / `resume_drone` {drone: "drone02" or "2"}: a paused drone takes no new sortie
  (one in the air finishes the sortie it flies and stays on its dock);
- `end_shift`: no new sorties; once every drone is home the run ends and the report is written.

Every command is answered on `patrol/operator/results` (`patrol.operator-result/1`: ok, or the
error naming what is wrong) and recorded in the run's event store. A payload that does not
validate is answered with the reason when it carries a command_id, else logged and dropped.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

log = logging.getLogger(__name__)

COMMAND_SCHEMA = "patrol.operator-command/1"
RESULT_SCHEMA = "patrol.operator-result/1"
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


class OperatorError(Exception):
    """A command that is well formed but cannot be carried out (the message says why)."""


class OperatorCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    schema_: Literal["patrol.operator-command/1"] = Field(alias="schema")
    command_id: str = Field(pattern=ID_PATTERN)
    command: Literal["patrol_cells", "pause_drone", "resume_drone", "end_shift"]
    cells: list[str] | None = Field(None, min_length=1, max_length=2000)
    drone: str | None = Field(None, pattern=ID_PATTERN)
    ts: float | None = None

    @model_validator(mode="after")
    def _arguments(self) -> "OperatorCommand":
        if self.command == "patrol_cells" and not self.cells:
            raise ValueError("patrol_cells needs cells: [grid_id, ...]")
        if self.command in ("pause_drone", "resume_drone") and not self.drone:
            raise ValueError(f"{self.command} needs drone: a drone id or number")
        extra = [k for k, v in (("cells", self.cells), ("drone", self.drone)) if v is not None
                 and not ((k == "cells" and self.command == "patrol_cells")
                          or (k == "drone" and self.command in ("pause_drone", "resume_drone")))]
        if extra:
            raise ValueError(f"{self.command} takes no {', '.join(extra)}")
        return self


def parse_command(payload: bytes | str) -> OperatorCommand:
    """Validate one payload; ValueError naming every problem."""
    try:
        data = json.loads(payload)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("payload must be a JSON object")
    try:
        return OperatorCommand.model_validate(data)
    except ValidationError as exc:
        raise ValueError("invalid OperatorCommand: " + "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(object)'}: "
            f"{'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}" for e in exc.errors())) from None


def apply_command(cmd: OperatorCommand, drones) -> str:
    """Carry out a command on the run's drones (runloop.drones.DroneOps); returns what was done."""
    if cmd.command == "end_shift":
        drones.end_shift()
        return "ending the shift: no new sorties, the run ends when every drone is home"
    if drones.chooser is None:
        raise OperatorError(f"{cmd.command}: this run flies one sweep (its scenario has no shift: section)")
    if cmd.command == "patrol_cells":
        unknown = [g for g in cmd.cells if g not in drones.plan.cells]
        if unknown:
            raise OperatorError(f"cells not patrolled in this run: {', '.join(unknown)}")
        drones.patrol_now(cmd.cells)
        return f"{len(cmd.cells)} cells go first"
    ids = list(drones.drones)
    drone_id = cmd.drone if cmd.drone in drones.drones else (
        ids[int(cmd.drone) - 1] if cmd.drone.isdigit() and 1 <= int(cmd.drone) <= len(ids) else None)
    if drone_id is None:
        raise OperatorError(f"no drone {cmd.drone!r} (this patrol flies {', '.join(ids)})")
    drones.pause(drone_id, cmd.command == "pause_drone")
    return f"{drone_id} {'paused' if cmd.command == 'pause_drone' else 'resumed'}"


class OperatorControl:
    """The run's operator stage: one MQTT session on the commands topic."""

    def __init__(self, broker, drones, store, clock, topic_prefix: str = "patrol"):
        from dispatch.mqtt import MqttSession

        self.drones = drones
        self.store = store
        self.clock = clock
        self.commands_topic = f"{topic_prefix}/operator/commands"
        self.results_topic = f"{topic_prefix}/operator/results"
        self.session = MqttSession(broker, client_id="patrol-run-operator", subscriptions=[(self.commands_topic, 1)],
                                   name="run-operator")

    async def run(self, stop) -> None:
        await self.session.run(self._handle, stop)

    async def _handle(self, message) -> None:
        ok, detail, command_id = False, "", None
        try:
            cmd = parse_command(message.payload)
            command_id = cmd.command_id
            detail = apply_command(cmd, self.drones)
            ok = True
        except (ValueError, OperatorError) as exc:
            detail = str(exc)
            if command_id is None:
                try:
                    command_id = json.loads(message.payload).get("command_id")
                except Exception:
                    command_id = None
                command_id = command_id if isinstance(command_id, str) and len(command_id) <= 64 else None
            log.warning("%s: %s", self.commands_topic, detail)
        self.store.add(self.clock(), "operator_command", command_id or "", ok=ok, detail=detail)
        if command_id is None:
            return
        result = {"schema": RESULT_SCHEMA, "command_id": command_id, "ok": ok, "ts": time.time()}
        result["detail" if ok else "error"] = detail
        try:
            await self.session.publish(self.results_topic, json.dumps(result).encode(), qos=1)
        except Exception as exc:
            log.warning("operator result for %s not sent: %s", command_id, exc)
