"""`patrol fly` and `patrol fleet`: fly planner sorties on real drones, SITL or the simulator.

Exit status: 0 only when every sortie was flown (or, with --verify-only, verified on the vehicle)
and the vehicle is disarmed on the ground; 1 when a vehicle did not (its reason is printed);
2 for bad input (missing plan, bad URL, items ArduCopter would refuse or store differently:
each named with the reason, nothing uploaded).
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from common.airframe import AirframeProfile
from flight.config import FlightConfig, LinkConfig, SafetyConfig
from flight.errors import FlightError, UrlError
from flight.link import parse_url

EXIT_OK, EXIT_NOT_FLOWN, EXIT_BAD_INPUT = 0, 1, 2


def register(subparsers) -> None:
    fly = subparsers.add_parser("fly", help="fly one .plan on one vehicle (verified upload, arm, AUTO, land)",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    fly.add_argument("--connect", required=True, metavar="URL",
                     help="tcp:HOST:PORT, udpin:HOST:PORT, udpout:HOST:PORT or /dev/ttyUSB0,57600")
    fly.add_argument("--plan", required=True, type=Path, metavar="FILE.plan",
                     help="the sortie to fly: a .plan (patrol plan, QGroundControl) or a .waypoints (QGC WPL 110)")
    fly.add_argument("--drone-id", default="", help="name used in progress lines (default: the URL)")
    _common(fly)
    fly.set_defaults(func=run_fly)

    fleet = subparsers.add_parser("fleet", help="fly a `patrol plan` output: drone i on vehicle i",
                                  description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    fleet.add_argument("--plan-dir", required=True, type=Path, metavar="DIR",
                       help="one directory per drone (sorted), each holding its sortie .plan files (sorted)")
    fleet.add_argument("--connect-base", default="tcp:127.0.0.1:5760", metavar="URL",
                       help="vehicle 0; vehicle i is on port + STEP*i (default tcp:127.0.0.1:5760)")
    fleet.add_argument("--port-step", type=int, default=10, metavar="STEP", help="port spacing (default 10)")
    _common(fleet)
    fleet.set_defaults(func=run_fleet)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verify-only", action="store_true",
                   help="upload and verify mission, fence and rally, then stop: nothing flies, no parameter "
                        "(failsafes, fence enable) is written")
    p.add_argument("--speedup", type=float, default=1.0,
                   help="simulator/SITL speedup, so heartbeats keep up with its failsafe clock (default 1)")
    p.add_argument("--signing-key", type=Path, metavar="FILE", help="MAVLink 2 signing key file")
    p.add_argument("--no-failsafe-params", action="store_true",
                   help="do not set FS_GCS_ENABLE / BATT_FS_LOW_ACT on connect")
    p.add_argument("--timeout", type=float, default=3600.0, dest="timeout_s", help="per-sortie limit in s")
    p.add_argument("--airframe", type=Path, metavar="FILE.yaml",
                   help="airframe profile the sorties were planned with (common/airframe.py fields: pack_mah, "
                        "cruise_current_a, hover_current_a, cruise_speed_m_s, reserve, ...; default: the planner's)")
    p.add_argument("--no-energy-check", action="store_true",
                   help="arm even when the sortie does not fit the vehicle's battery (the energy watch still runs)")


def _config(args: argparse.Namespace) -> FlightConfig:
    link = {"signing_key_file": args.signing_key} if args.signing_key else {}
    # --verify-only writes no parameter: it only uploads and reads back the sortie's lists
    safety = {"apply_on_connect": not args.no_failsafe_params and not args.verify_only}
    try:
        airframe = AirframeProfile.from_yaml(args.airframe) if args.airframe else AirframeProfile()
    except ValueError as exc:
        raise _InputError(str(exc)) from exc
    common = {"sortie_timeout_s": args.timeout_s, "airframe": airframe, "check_energy": not args.no_energy_check}
    if args.speedup != 1.0:
        return FlightConfig.for_speedup(args.speedup, link=link, safety=safety, **common)
    return FlightConfig(link=LinkConfig(**link), safety=SafetyConfig(**safety), **common)


def _say(text: str) -> None:
    print(text, flush=True)


def _fail(text: str, code: int) -> int:
    print(f"patrol: {text}", file=sys.stderr, flush=True)
    return code


def _read_plan(path: Path):
    """A .plan (QGC, ours) or .waypoints (QGC WPL 110, Mission Planner) as a Mission, through the
    planner's readers (the one place that knows the formats); refused, naming each item and why,
    when ArduCopter would refuse or change what it holds."""
    try:
        from mission_planner import read_plan, read_waypoints
    except ImportError as exc:
        raise _InputError(f"cannot read {path}: mission_planner.read_plan is not available ({exc})") from exc
    if not path.is_file():
        raise _InputError(f"plan file {path} does not exist")
    try:
        mission = read_waypoints(path) if path.suffix.lower() == ".waypoints" else read_plan(path)
    except Exception as exc:  # the planner's own error names what is wrong with the file
        raise _InputError(f"cannot read plan {path}: {exc}") from exc
    if len(mission.items) < 2:
        raise _InputError(f"plan {path} has no mission items beyond home")
    from flight.mission import sortie_storage_problems
    problems = sortie_storage_problems(mission)
    if problems:  # ArduCopter would refuse these or keep other numbers: nothing is uploaded
        raise _InputError(f"plan {path} cannot be flown on ArduCopter:\n  " + "\n  ".join(problems))
    return mission


class _InputError(Exception):
    pass


def run_fly(args: argparse.Namespace) -> int:
    try:
        address = parse_url(args.connect)
        mission = _read_plan(args.plan)
        config = _config(args)
    except (UrlError, _InputError, ValueError) as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    if not mission.name:
        from dataclasses import replace
        mission = replace(mission, name=args.plan.stem)
    return asyncio.run(_fly(address, args.drone_id or str(address), [mission], config, args.verify_only))


async def _fly(address, drone_id: str, missions, config: FlightConfig, verify_only: bool) -> int:
    from flight.sortie import fly_sortie, stay_until_landed
    from flight.vehicle import Vehicle

    v = Vehicle(address, drone_id=drone_id, config=config)
    try:
        _say(f"{drone_id}: connecting to {address}")
        await v.connect()
        _say(f"{drone_id}: connected (system {v.target_system}, mode {v.state.mode}, "
             f"parameters {v.params.style or 'not read'})")
        for mission in missions:
            await fly_sortie(v, mission, progress=_say, verify_only=verify_only)
        if not verify_only and (v.state.armed or not v.state.link_ok):
            return _fail(f"{drone_id}: vehicle is not disarmed on the ground", EXIT_NOT_FLOWN)
        return EXIT_OK
    except FlightError as exc:
        if v.state.armed:  # still flying (home, we hope): stay with it, telemetry on screen, until it is down
            _say(f"{drone_id}: sortie ended: {exc}; watching the vehicle until it has landed and disarmed")
            try:
                await stay_until_landed(v, _say)
            except FlightError as again:
                return _fail(f"{exc}; and then: {again}", EXIT_NOT_FLOWN)
        return _fail(str(exc), EXIT_NOT_FLOWN)
    finally:
        await v.close()


def drone_plan_dirs(plan_dir: Path) -> list[tuple[str, list[Path]]]:
    """(drone id, its sortie .plan files) per drone directory, both sorted by name."""
    if not plan_dir.is_dir():
        raise _InputError(f"plan directory {plan_dir} does not exist")
    out = []
    for d in sorted(p for p in plan_dir.iterdir() if p.is_dir()):
        plans = sorted(d.glob("*.plan"))
        if plans:
            out.append((d.name, plans))
    if not out:
        raise _InputError(f"{plan_dir} holds no drone directories with .plan files")
    return out


def run_fleet(args: argparse.Namespace) -> int:
    try:
        base = parse_url(args.connect_base)
        drones = drone_plan_dirs(args.plan_dir)
        plans = [[_read_plan(p) for p in files] for _, files in drones]
        addresses = [base.with_port_offset(args.port_step * i) for i in range(len(drones))]
        config = _config(args)
    except (UrlError, _InputError, ValueError) as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    from dataclasses import replace
    plans = [[m if m.name else replace(m, name=f.stem) for m, f in zip(ms, files)]
             for ms, (_, files) in zip(plans, drones)]
    return asyncio.run(_fleet([d for d, _ in drones], addresses, plans, config, args.verify_only))


async def _fleet(ids, addresses, plans, config: FlightConfig, verify_only: bool) -> int:
    from flight.fleet import Fleet

    fleet = Fleet.from_urls(addresses, config=config, drone_ids=ids)
    try:
        _say(f"connecting {len(fleet)} vehicles from {addresses[0]}")
        await fleet.connect()
        results = await fleet.fly(plans, progress=_say, verify_only=verify_only)
    except FlightError as exc:
        return _fail(str(exc), EXIT_NOT_FLOWN)
    finally:
        await fleet.close()
    failed = 0
    for drone_id, per_drone, wanted in zip(ids, results, plans):
        done = [r for r in per_drone if not isinstance(r, Exception)]
        for r in per_drone:
            if isinstance(r, Exception):
                failed += 1
                print(f"patrol: {r}", file=sys.stderr, flush=True)
        _say(f"{drone_id}: {len(done)}/{len(wanted)} sorties {'verified' if verify_only else 'flown'}")
    return EXIT_OK if failed == 0 and all(len(r) == len(p) for r, p in zip(results, plans)) else EXIT_NOT_FLOWN
