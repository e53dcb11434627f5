"""`patrol sim ...`: built-in simulated vehicles and the ArduPilot SITL launcher.

    patrol sim vehicles --count N [--home LAT,LON,ALT] [--speedup S] [--fast-start] [--params 4.5|4.7]
                        [--udp HOST:PORT] [--base-port P] [--packet-loss PCT] [--latency-ms MS]
                        [--wind SPEED,FROM_DEG] [--battery-pct PCT]
    patrol sim sitl     --count N [--home LAT,LON,ALT] [--speedup S] [--base-port P]

Both run in the foreground until Ctrl-C and print one line per vehicle with its endpoint.
Other parts of sim/ add their own subcommands by exposing `register_sim(subparsers)` in one of
`_EXTRA_MODULES` (sim.riders, sim.camera, sim.camera.cli, sim.scenarios, sim.trainer); missing
modules are skipped.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys

from common.airframe import AirframeProfile
from sim import SimError

log = logging.getLogger(__name__)
# other parts of sim/ that add `patrol sim <name>` through a `register_sim(subparsers)` function
_EXTRA_MODULES = ("sim.riders", "sim.camera", "sim.camera.cli", "sim.scenarios", "sim.trainer")


def register(subparsers: argparse._SubParsersAction) -> None:
    sim = subparsers.add_parser("sim", help="built-in ArduCopter-compatible vehicles, SITL launcher")
    sub = sim.add_subparsers(dest="sim_command", metavar="SIMCOMMAND")

    veh = sub.add_parser("vehicles", help="run N simulated ArduCopters until Ctrl-C")
    _common(veh)
    veh.add_argument("--fast-start", action="store_true", help="armable within ~1 s instead of ~41 s")
    veh.add_argument("--params", choices=("4.7", "4.5"), default="4.7",
                     help="parameter names: 4.7+ (WP_SPD, RTL_ALT_M) or 4.5/4.6 (WPNAV_SPEED cm/s, RTL_ALT cm)")
    veh.add_argument("--udp", metavar="HOST:PORT", help="also send to a UDP GCS (port + 10*i per vehicle)")
    veh.add_argument("--seed", type=int, default=0, help="random seed for packet loss (default 0)")
    veh.add_argument("--packet-loss", type=float, default=0.0, metavar="PCT", help="drop PCT %% of packets")
    veh.add_argument("--latency-ms", type=float, default=0.0, metavar="MS", help="added latency each way")
    veh.add_argument("--wind", metavar="SPEED,FROM_DEG", help="steady wind, e.g. 6,270 (6 m/s from the west)")
    veh.add_argument("--battery-mah", type=float, metavar="MAH",
                     help="pack capacity (default: the airframe profile's pack, 13000 = 25 min at 10 m/s, the "
                          "planner's sortie length; SITL's own default is 3300)")
    veh.add_argument("--battery-pct", type=float, metavar="PCT", help="start with the pack PCT %% full")
    veh.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="boot with this parameter set, e.g. OA_TYPE=2 (repeatable)")
    veh.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1; 0.0.0.0 lets other machines connect)")
    veh.add_argument("--spacing-m", type=float, default=0.0, metavar="M",
                     help="place vehicle i M*i metres east of home (default 0: all at home)")
    veh.set_defaults(func=run_vehicles)

    sitl = sub.add_parser("sitl", help="run N real ArduCopter SITL processes (ARDUPILOT_SITL) until Ctrl-C")
    _common(sitl)
    sitl.add_argument("--binary", help="arducopter SITL binary (default: $ARDUPILOT_SITL or arducopter on PATH)")
    sitl.add_argument("--defaults", help="defaults .parm file (default: $ARDUPILOT_DEFAULTS)")
    sitl.add_argument("--workdir", help="parent of the per-instance working directories (default: a temp dir)")
    sitl.set_defaults(func=run_sitl)
    sim.set_defaults(func=lambda args: (sim.print_help(), 2)[1])

    for name in _EXTRA_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        hook = getattr(module, "register_sim", None)
        if hook is not None:
            hook(sub)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--count", type=int, default=1, help="number of vehicles (default 1)")
    p.add_argument("--home", default="32.0,119.58,10", metavar="LAT,LON,ALT",
                   help="home of vehicle 0, altitude metres MSL (default Danyang 32.0,119.58,10)")
    p.add_argument("--speedup", type=float, default=1.0, help="vehicle time / wall time (default 1)")
    p.add_argument("--base-port", type=int, default=5760, help="TCP port of vehicle 0; vehicle i +10*i (default 5760)")
    p.add_argument("--airframe", metavar="FILE.yaml", help="airframe profile (common/airframe.py fields: pack_mah, "
                   "cruise_current_a, ...; default: 13000 mAh, 25 min at 10 m/s): the pack the vehicles carry")


def load_airframe(path: str | None) -> AirframeProfile:
    """The --airframe profile, or the default one; SimError naming what is wrong with the file."""
    if not path:
        return AirframeProfile()
    try:
        return AirframeProfile.from_yaml(path)
    except ValueError as exc:
        raise SimError(str(exc)) from exc


def parse_home(text: str) -> tuple[float, float, float]:
    """'LAT,LON,ALT' -> floats, with an error naming what is wrong.

    >>> parse_home("32.0,119.58,10")
    (32.0, 119.58, 10.0)
    """
    parts = text.split(",")
    if len(parts) != 3:
        raise SimError(f"--home must be LAT,LON,ALT (three numbers), got {text!r}")
    try:
        lat, lon, alt = (float(p) for p in parts)
    except ValueError as exc:
        raise SimError(f"--home must be LAT,LON,ALT numbers, got {text!r}") from exc
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise SimError(f"--home latitude/longitude out of range: {text!r}")
    return lat, lon, alt


def _parse_wind(text: str) -> tuple[float, float]:
    try:
        speed, direction = (float(x) for x in text.split(","))
    except ValueError as exc:
        raise SimError(f"--wind must be SPEED,FROM_DEG, got {text!r}") from exc
    return speed, direction


def _parse_params(items: list[str]) -> dict[str, float]:
    params: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            params[name.strip().upper()] = float(value)
        except ValueError as exc:
            raise SimError(f"--param must be NAME=NUMBER, got {item!r}") from exc
    return params


def run_vehicles(args: argparse.Namespace) -> int:
    try:
        home = parse_home(args.home)
        wind = _parse_wind(args.wind) if args.wind else None
        args.boot_params = _parse_params(args.param)
        args.airframe_profile = load_airframe(args.airframe)
        return asyncio.run(_serve_vehicles(args, home, wind))
    except SimError as exc:
        print(f"patrol sim vehicles: {exc}", file=sys.stderr)
        return 2


async def _serve_vehicles(args: argparse.Namespace, home: tuple[float, float, float],
                          wind: tuple[float, float] | None) -> int:
    from sim.vehicles import SimulatedFleet

    fleet = SimulatedFleet(count=args.count, base_port=args.base_port, home=home, speedup=args.speedup,
                           fast_start=args.fast_start, param_style=args.params, seed=args.seed, udp_gcs=args.udp,
                           home_spacing_m=args.spacing_m, host=args.host,
                           battery_mah=args.battery_mah or args.airframe_profile.pack_mah,
                           params=args.boot_params or None, airframe=args.airframe_profile)
    for v in fleet:
        if args.packet_loss:
            v.faults.set_packet_loss(args.packet_loss)
        if args.latency_ms:
            v.faults.set_latency(args.latency_ms)
        if wind:
            v.faults.set_wind(*wind)
        if args.battery_pct is not None:
            v.faults.drain_battery_to(args.battery_pct)
    stop = asyncio.Event()
    _on_signals(stop)
    async with fleet:
        print(f"{len(fleet)} simulated ArduCopter(s), speedup {fleet.speedup:g}, params {args.params}"
              f"{', fast start' if args.fast_start else ''}:", flush=True)
        for v in fleet:
            udp = f"  udp -> {fleet.udp_gcs[0]}:{fleet.udp_gcs[1] + 10 * v.index}" if fleet.udp_gcs else ""
            where = v.url if args.host == "127.0.0.1" else f"tcp:{args.host}:{v.port}"
            print(f"  vehicle {v.index}: sysid {v.sysid}  {where}{udp}", flush=True)
        print("Ctrl-C to stop; type `help` for run-time faults.", flush=True)
        _read_fault_commands(fleet, stop)
        await stop.wait()
    print("stopped.", flush=True)
    return 0


FAULT_HELP = """run-time faults (VEHICLE is an index or `all`):
  loss VEHICLE PCT            drop PCT % of packets each way
  latency VEHICLE MS          add MS milliseconds each way
  cut VEHICLE SECONDS         cut the link for SECONDS (vehicle time)
  wind VEHICLE SPEED FROM_DEG steady wind
  glitch VEHICLE SECONDS M    GPS reports M metres off for SECONDS
  battery VEHICLE PCT         pack PCT % full now
  volt VEHICLE VOLTS          pin the measured voltage (0 clears)
  status                      one line per vehicle"""


def apply_fault_command(fleet, line: str) -> str:
    """Apply one typed fault command to the fleet; returns what to print (errors named).

    >>> class F(list): pass
    >>> apply_fault_command(F(), "bogus 1")
    "unknown command 'bogus'; type help"
    """
    words = line.split()
    if not words:
        return ""
    cmd, rest = words[0].lower(), words[1:]
    if cmd == "help":
        return FAULT_HELP
    if cmd == "status":
        return "\n".join(f"  {v.index}: {t.mode:9s} armed={t.armed} alt={t.alt_rel_m:6.1f} m "
                         f"batt={t.battery_remaining_pct}% {t.voltage_v:.2f} V"
                         for v in fleet for t in [v.truth])
    arity = {"loss": 1, "latency": 1, "cut": 1, "wind": 2, "glitch": 2, "battery": 1, "volt": 1}
    if cmd not in arity:
        return f"unknown command {cmd!r}; type help"
    if len(rest) != arity[cmd] + 1:
        return f"{cmd} needs VEHICLE and {arity[cmd]} number(s); type help"
    who, nums = rest[0], rest[1:]
    try:
        values = [float(x) for x in nums]
        targets = list(fleet) if who == "all" else [fleet[int(who)]]
    except (ValueError, IndexError):
        return f"bad vehicle or number in {line!r}; vehicles are 0..{len(fleet) - 1} or all"
    try:
        for v in targets:
            f = v.faults
            {"loss": lambda: f.set_packet_loss(values[0]), "latency": lambda: f.set_latency(values[0]),
             "cut": lambda: f.cut_link(values[0]), "wind": lambda: f.set_wind(values[0], values[1]),
             "glitch": lambda: f.gps_glitch(values[0], values[1]),
             "battery": lambda: f.drain_battery_to(values[0]),
             "volt": lambda: f.battery_fault(values[0]) if values[0] > 0 else f.clear_battery_fault()}[cmd]()
    except SimError as exc:
        return f"refused: {exc}"
    return f"ok: {cmd} on vehicle(s) {', '.join(str(v.index) for v in targets)}"


def _read_fault_commands(fleet, stop: asyncio.Event) -> None:
    """Read fault commands from stdin on a daemon thread (so Ctrl-C never waits for a line)."""
    import threading

    if sys.stdin is None or not sys.stdin.readable():
        return
    loop = asyncio.get_running_loop()

    def handle(line: str) -> None:
        out = apply_fault_command(fleet, line)
        if out:
            print(out, flush=True)

    def reader() -> None:
        try:
            for line in sys.stdin:
                loop.call_soon_threadsafe(handle, line)
        except (ValueError, OSError, RuntimeError):  # stdin closed / loop gone at shutdown
            return

    threading.Thread(target=reader, name="fault-commands", daemon=True).start()


def run_sitl(args: argparse.Namespace) -> int:
    from sim.sitl import SitlFleet

    try:
        home = parse_home(args.home)
        fleet = SitlFleet(count=args.count, home=home, speedup=args.speedup, base_port=args.base_port,
                          binary=args.binary, defaults=args.defaults, workdir=args.workdir,
                          airframe=load_airframe(args.airframe))
        return asyncio.run(_serve_sitl(fleet))
    except SimError as exc:
        print(f"patrol sim sitl: {exc}", file=sys.stderr)
        return 2


async def _serve_sitl(fleet) -> int:
    stop = asyncio.Event()
    _on_signals(stop)
    print(f"starting {fleet.count} ArduCopter SITL instance(s) from {fleet.binary} ...", flush=True)
    async with fleet:
        pack = ", ".join(f"{k} {v:g}" for k, v in fleet.airframe_params().items())
        for inst in fleet.instances:
            print(f"  instance {inst.index}: sysid {inst.sysid}  {inst.url}  (cwd {inst.workdir}; {pack})", flush=True)
        print("Ctrl-C to stop.", flush=True)
        await stop.wait()
    print("stopped.", flush=True)
    return 0


def _on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread / not supported
            pass
