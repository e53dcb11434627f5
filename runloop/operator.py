"""Operator control of a running patrol over MQTT (docs/mqtt-api.md, "Operator commands").

`patrol/operator/commands` (operator -> controller, QoS 1), schema `patrol.operator-command/1`:

- `patrol_cells` {cells: [grid_id, ...]}: those cells go first: the next drones ready on their
  docks fly them (drones in the air finish their sorties);
- `pause_drone` / `resume_drone` {drone: "drone02" or "2"}: a paused drone takes no new sortie
  (one in the air finishes the sortie it flies and stays on its dock);
- `end_shift`: no new sorties; once every drone is home the run ends and the report is written;
- `send_drone` {drone, lat, lon}: a drone in the air leaves its patrol and holds overwatch over
  the point (the scenario's standoff and altitude, camera on it) until `resume_drone` sends it
  back to its patrol or `recall_drone` home;
- `recall_drone` {drone}: home now, then held on its dock until `resume_drone`;
- `dispatch_unit` {incident, unit}: alert this unit for this open incident (a unit alerted for it
  before is stood down);
- `close_false_alarm` {incident}: close an open incident as a false alarm: its unit gets an
  alert-cancel, its drone goes back to its patrol, the report counts it among the false alerts.

Every command is answered on `patrol/operator/results` (`patrol.operator-result/1`: ok, or the
error naming what is wrong) and recorded in the run's event store. A payload that does not
validate is answered with the reason when it carries a command_id, else logged and dropped.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

log = logging.getLogger(__name__)

COMMAND_SCHEMA = "patrol.operator-command/1"
RESULT_SCHEMA = "patrol.operator-result/1"
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


class OperatorError(Exception):
    """A command that is well formed but cannot be carried out (the message says why)."""


# Each command's arguments, as the error for a missing one says them.
ARGUMENTS: dict[str, dict[str, str]] = {
    "patrol_cells": {"cells": "[grid_id, ...]"},
    "pause_drone": {"drone": "a drone id or number"},
    "resume_drone": {"drone": "a drone id or number"},
    "end_shift": {},
    "send_drone": {"drone": "a drone id or number", "lat": "degrees", "lon": "degrees"},
    "recall_drone": {"drone": "a drone id or number"},
    "dispatch_unit": {"incident": "an open incident id", "unit": "a unit id"},
    "close_false_alarm": {"incident": "an open incident id"},
}
DISPATCH_COMMANDS = ("dispatch_unit", "close_false_alarm")  # carried out by the run's dispatcher


class OperatorCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    schema_: Literal["patrol.operator-command/1"] = Field(alias="schema")
    command_id: str = Field(pattern=ID_PATTERN)
    command: Literal["patrol_cells", "pause_drone", "resume_drone", "end_shift", "send_drone", "recall_drone",
                     "dispatch_unit", "close_false_alarm"]
    cells: list[str] | None = Field(None, min_length=1, max_length=2000)
    drone: str | None = Field(None, pattern=ID_PATTERN)
    lat: float | None = Field(None, ge=-90.0, le=90.0, allow_inf_nan=False)
    lon: float | None = Field(None, ge=-180.0, le=180.0, allow_inf_nan=False)
    incident: str | None = Field(None, pattern=ID_PATTERN)
    unit: str | None = Field(None, pattern=ID_PATTERN)
    ts: float | None = None

    @model_validator(mode="after")
    def _arguments(self) -> "OperatorCommand":
        wanted = ARGUMENTS[self.command]
        missing = [f"{k}: {what}" for k, what in wanted.items() if getattr(self, k) is None]
        if missing:
            raise ValueError(f"{self.command} needs {', '.join(missing)}")
        extra = [k for k in ("cells", "drone", "lat", "lon", "incident", "unit")
                 if getattr(self, k) is not None and k not in wanted]
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
    """Carry out a shift command on the run's drones (runloop.drones.DroneOps); returns what was done."""
    if cmd.command == "end_shift":
        drones.end_shift()
        return "ending the shift: no new sorties, the run ends when every drone is home"
    if cmd.command == "patrol_cells":
        if drones.chooser is None:
            raise OperatorError(f"{cmd.command}: this run flies one sweep (its scenario has no shift: section)")
        unknown = [g for g in cmd.cells if g not in drones.plan.cells]
        if unknown:
            raise OperatorError(f"cells not patrolled in this run: {', '.join(unknown)}")
        drones.patrol_now(cmd.cells)
        return f"{len(cmd.cells)} cells go first"
    if cmd.command not in ("pause_drone", "resume_drone"):
        raise OperatorError(f"{cmd.command} is not a shift command")
    drone_id = drone_named(cmd.drone, drones)
    drones.pause(drone_id, cmd.command == "pause_drone")
    return f"{drone_id} {'paused' if cmd.command == 'pause_drone' else 'resumed'}"


def drone_named(name: str, drones) -> str:
    """A drone id from its id or its number (1 = the first drone); OperatorError naming the fleet."""
    ids = list(drones.drones)
    drone_id = name if name in drones.drones else (
        ids[int(name) - 1] if name.isdigit() and 1 <= int(name) <= len(ids) else None)
    if drone_id is None:
        raise OperatorError(f"no drone {name!r} (this patrol flies {', '.join(ids)})")
    return drone_id


async def carry_out(cmd: OperatorCommand, drones, dispatcher=None) -> str:
    """Carry out any operator command on the run's drones and dispatcher; returns what was done,
    OperatorError naming why it was refused (nothing half done)."""
    from dispatch.errors import DispatchError

    if cmd.command in DISPATCH_COMMANDS:
        if dispatcher is None:
            raise OperatorError(f"{cmd.command}: this run has no dispatcher")
        try:
            if cmd.command == "close_false_alarm":
                return dispatcher.close_false_alarm(cmd.incident)
            return dispatcher.assign_unit(cmd.incident, cmd.unit)
        except DispatchError as exc:
            raise OperatorError(str(exc)) from None
    if cmd.command == "send_drone":
        return await drones.send_to(drone_named(cmd.drone, drones), cmd.lat, cmd.lon)
    if cmd.command == "recall_drone":
        return await drones.recall(drone_named(cmd.drone, drones))
    if cmd.command == "end_shift":
        back = [d for d in list(drones.drones) if await drones.back_from_point(d)]  # they finish their sorties
        done = apply_command(cmd, drones)
        return done + (f"; {', '.join(back)} back from the operator's point to finish its sortie" if back else "")
    if cmd.command == "resume_drone":
        drone_id = drone_named(cmd.drone, drones)
        if await drones.back_from_point(drone_id):
            drones.pause(drone_id, False)
            return f"{drone_id} back to its patrol"
    return apply_command(cmd, drones)


class OperatorControl:
    """The run's operator stage: one MQTT session on the commands topic."""

    def __init__(self, broker, drones, store, clock, topic_prefix: str = "patrol", dispatcher=None):
        from dispatch.mqtt import MqttSession

        self.drones = drones
        self.dispatcher = dispatcher
        self.store = store
        self.clock = clock
        self.commands_topic = f"{topic_prefix}/operator/commands"
        self.results_topic = f"{topic_prefix}/operator/results"
        self.session = MqttSession(broker, client_id="patrol-run-operator", subscriptions=[(self.commands_topic, 1)],
                                   name="run-operator")

    async def run(self, stop) -> None:
        await self.session.run(self._handle, stop)

    async def _handle(self, message) -> None:
        ok, detail, command_id, cmd = False, "", None, None
        try:
            cmd = parse_command(message.payload)
            command_id = cmd.command_id
            detail = await carry_out(cmd, self.drones, self.dispatcher)
            ok = True
        except Exception as exc:  # refused (ValueError, OperatorError) or a bug: answered either way
            detail = str(exc) if isinstance(exc, (ValueError, OperatorError)) else f"failed: {exc!r}"
            if command_id is None:
                try:
                    command_id = json.loads(message.payload).get("command_id")
                except Exception:
                    command_id = None
                command_id = command_id if isinstance(command_id, str) and len(command_id) <= 64 else None
            log.warning("%s: %s", self.commands_topic, detail)
        self.store.add(self.clock(), "operator_command", command_id or "", ok=ok, detail=detail,
                       **({"command": cmd.command, **cmd.model_dump(include={"drone", "lat", "lon", "incident", "unit",
                                                                             "cells"}, exclude_none=True)}
                          if cmd is not None else {}))
        if command_id is None:
            return
        result = {"schema": RESULT_SCHEMA, "command_id": command_id, "ok": ok, "ts": time.time()}
        result["detail" if ok else "error"] = detail
        try:
            await self.session.publish(self.results_topic, json.dumps(result).encode(), qos=1)
        except Exception as exc:
            log.warning("operator result for %s not sent: %s", command_id, exc)


class OperatorClient:
    """A console's side of the operator API: one MQTT session that sends commands and waits for
    their results (the live web view's buttons use it; any other console can do the same)."""

    def __init__(self, broker, topic_prefix: str = "patrol", client_id: str = "patrol-console"):
        from dispatch.mqtt import MqttSession

        self.commands_topic = f"{topic_prefix}/operator/commands"
        self.results_topic = f"{topic_prefix}/operator/results"
        self._waiting: dict[str, asyncio.Future] = {}
        self.session = MqttSession(broker, client_id=client_id, subscriptions=[(self.results_topic, 1)],
                                   name="console")

    async def run(self, stop) -> None:
        await self.session.run(self._on_result, stop)

    async def _on_result(self, message) -> None:
        try:
            result = json.loads(message.payload)
            future = self._waiting.get(result.get("command_id"))
        except (ValueError, AttributeError):
            return
        if future is not None and not future.done():
            future.set_result(result)

    async def send(self, command: dict, timeout_s: float = 10.0) -> dict:
        """Send one command (schema and command_id filled in) and return its result:
        {"ok": true, "detail": ...} or {"ok": false, "error": ...}. OperatorError when the broker
        or the run does not answer in time."""
        command_id = f"console-{secrets.token_hex(6)}"
        payload = {**command, "schema": COMMAND_SCHEMA, "command_id": command_id, "ts": time.time()}
        future = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = future
        try:
            await self.session.wait_connected(timeout_s)
            await self.session.publish(self.commands_topic, json.dumps(payload).encode(), qos=1)
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise OperatorError(f"no answer from the run within {timeout_s:.0f} s") from None
        except Exception as exc:  # DispatchError: not connected, publish failed
            raise OperatorError(str(exc)) from None
        finally:
            self._waiting.pop(command_id, None)
