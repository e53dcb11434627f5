"""The `patrol` command line. Thin: each package registers its own subcommands.

    patrol plan     grid cells -> sorties, .plan/.waypoints, plan.png       (mission_planner)
    patrol sim      built-in ArduCopter-compatible vehicles, SITL launcher  (sim)
    patrol fly      fly one .plan on one vehicle; `patrol fleet` a plan dir  (flight)
    patrol watch    incidents in a video / stream                          (vision)
    patrol eval     score vision on labelled clips: true/false/missed alerts (vision)
    patrol dispatch the MQTT controller; `patrol rider` the officer's app   (dispatch)
    patrol run      a patrol from a scenario file: plan, fly, see, dispatch, report (runloop)
    patrol demo     the bundled Danyang scenario on the embedded broker and built-in simulator
    patrol report   rebuild report.json / report.html of a finished run
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
import time
from pathlib import Path

# Each module exposes `register(subparsers)`; a subcommand sets `func(args) -> int` as its default.
COMMAND_MODULES = (
    "mission_planner.cli",
    "sim.cli",
    "flight.cli",
    "vision.cli",
    "dispatch.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="patrol", description="Dan Leopard Patrol: drone patrol and ground-air coordination")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="a patrol from a scenario: plan, fly, see, dispatch; writes the report")
    run.add_argument("--scenario", required=True, help="scenario YAML, or a bundled name (danyang-demo)")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--sitl", action="store_true", help="real ArduCopter SITL (ARDUPILOT_SITL) instead of the built-in simulator")
    where.add_argument("--connect-base", metavar="URL", help="vehicles already running: drone i at URL's port + 10*i")
    run.add_argument("--broker", metavar="URL", help="MQTT broker (default: an embedded one for this run)")
    run.add_argument("--out", default=None, help="run directory (default runs/<scenario>-<time>)")
    run.add_argument("--speedup", type=float, default=None, help="override the scenario's speedup")
    run.add_argument("--until", type=float, default=None, metavar="S",
                     help="end the run (the shift) at this scenario second instead of the scenario's duration_s")
    run.add_argument("--no-live", action="store_true", help="no live table")
    run.add_argument("--video", metavar="DRONE=SOURCE", action="append", type=_video_source, default=[],
                     help="a drone's real video instead of the synthetic camera: drone01=rtsp://HOST/cam, "
                          "2=udp://@:5600, or a recorded file replayed from take-off (repeatable)")
    run.add_argument("--vision-workers", choices=("in-process", "process"), default="in-process",
                     help="where each drone's video is watched: in this process (default), or by its own "
                          "`patrol watch --broker` worker process, as on a separate machine (needs --video for "
                          "every drone and speedup 1)")
    run.add_argument("--worker-logins", metavar="FILE", type=Path, default=None,
                     help="with --vision-workers process on a broker with logins: patrol broker-config's "
                          "credentials.yaml; each worker process logs in as its drone (drone-<id>)")
    add_web_arguments(run)
    run.set_defaults(func=cmd_run)
    demo = sub.add_parser("demo", help="the bundled Danyang scenario on the embedded broker and built-in simulator")
    demo.add_argument("--out", default="demo-out", help="run directory (default demo-out)")
    demo.add_argument("--no-live", action="store_true", help="no live table")
    add_web_arguments(demo)
    demo.set_defaults(func=run_demo)
    rep = sub.add_parser("report", help="rebuild report.json / report.html / report.png of a finished run")
    rep.add_argument("run_dir", help="the run directory (holds events.sqlite)")
    rep.set_defaults(func=cmd_report)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def add_web_arguments(parser: argparse.ArgumentParser) -> None:
    """--web and what guards it (docs/run.md, "Live web view")."""
    parser.add_argument("--web", metavar="[HOST:]PORT", type=_web_address, default=None,
                        help="serve the live map and tables at http://HOST:PORT/ (default host 127.0.0.1, this "
                             "machine only; any other host gets a token, generated and printed if not given)")
    parser.add_argument("--web-token", metavar="TOKEN", default=os.environ.get("PATROL_WEB_TOKEN"),
                        help="the token the web view asks for (default: env PATROL_WEB_TOKEN, which keeps it out "
                             "of the process list; none on loopback, generated beyond it)")
    parser.add_argument("--web-control-token", metavar="TOKEN", default=os.environ.get("PATROL_WEB_CONTROL_TOKEN"),
                        help="a second token that may also act on the run: POST /alarms (default: env "
                             "PATROL_WEB_CONTROL_TOKEN; none: nobody may)")
    parser.add_argument("--web-allow-host", metavar="NAME", action="append", default=[],
                        help="one more name the web view answers to in the Host header, e.g. the name this "
                             "machine has on the LAN (repeatable)")
    from dispatch.cli import add_rider_web_arguments  # the rider web app at /rider/ of the same server

    add_rider_web_arguments(parser, web=False)


def _web_address(text: str) -> tuple[str, int]:
    from common.httpd import web_address_arg

    return web_address_arg(text)


def _video_source(text: str) -> tuple[str, str]:
    from runloop.eyes import parse_video_arg

    try:
        return parse_video_arg(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def run_demo(args: argparse.Namespace) -> int:
    """The bundled Danyang scenario: 3 drones, 4 riders, a fire, a crowd and a stopped vehicle."""
    args.scenario, args.sitl, args.connect_base, args.broker, args.speedup = "danyang-demo", False, None, None, None
    args.video, args.until, args.vision_workers, args.worker_logins = [], None, "in-process", None
    return cmd_run(args)


def cmd_run(args: argparse.Namespace) -> int:
    from runloop import RunError
    from runloop.scenario import load_scenario

    try:
        scenario = load_scenario(args.scenario)
        if args.speedup:
            scenario = scenario.model_copy(update={"speedup": args.speedup})
        if getattr(args, "until", None) is not None:
            if not 0 < args.until <= 48 * 3600:
                raise RunError(f"--until {args.until:g}: must be between 0 and {48 * 3600} scenario seconds")
            scenario = scenario.model_copy(update={"duration_s": args.until})
    except RunError as exc:
        print(f"patrol run: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out or f"runs/{scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        report = asyncio.run(run_patrol(scenario, out, broker_url=args.broker, live=not args.no_live,
                                        sitl=args.sitl, connect_base=args.connect_base,
                                        web=web_options(args),
                                        video=dict(args.video), vision_workers=args.vision_workers,
                                        worker_logins=args.worker_logins))
    except RunError as exc:
        print(f"patrol run: {exc}", file=sys.stderr)
        return 2
    return print_verdict(report, out)


def web_options(args: argparse.Namespace) -> "WebOptions | None":
    from runloop.web import WebOptions

    if args.web is None:
        return None
    from dispatch.cli import rider_page_config

    return WebOptions(*args.web, token=args.web_token, allowed_hosts=tuple(args.web_allow_host),
                      control_token=args.web_control_token, rider_page=rider_page_config(args))


def cmd_report(args: argparse.Namespace) -> int:
    from runloop import RunError
    from runloop.report import write_report

    try:
        report = write_report(Path(args.run_dir))
    except RunError as exc:
        print(f"patrol report: {exc}", file=sys.stderr)
        return 2
    return print_verdict(report, Path(args.run_dir))


def print_verdict(report: dict, out: Path) -> int:
    for line in report["failures"]:
        print(f"  FAILED: {line}")
    print(f"{report['scenario']}: {'PASSED' if report['passed'] else 'FAILED'}; report {out / 'report.html'}")
    return 0 if report["passed"] else 1


async def run_patrol(scenario, out: Path, *, broker_url: str | None = None, live: bool = True,
                     broker_restart=None, protocol: str | None = None, sitl: bool = False,
                     connect_base: str | None = None, web: "WebOptions | None" = None,
                     video: dict[str, str] | None = None, vision_workers: str = "in-process",
                     worker_logins: Path | None = None) -> dict:
    """One patrol run, as named stages sharing one stop event; shutdown undoes them in reverse.

    broker_restart: async fn(down_s) for a scenario's broker_restart fault on an outside broker
    (tests pass the Mosquitto fixture's); the embedded broker restarts itself.
    video: drone (id or number) -> its real video source, watched instead of the synthetic camera.
    vision_workers: "in-process", or "process" (each video watched by its own `patrol watch` process);
    worker_logins: patrol broker-config's credentials.yaml, for the workers' own logins.
    """
    from runloop import stages

    out.mkdir(parents=True, exist_ok=True)
    run = stages.PatrolRun(scenario, out)
    stop = asyncio.Event()
    run.stop_on_signals(stop)  # Ctrl-C / SIGTERM end the run early; the report is still written
    try:
        run.init_store()
        run.init_plan()
        run.set_video(video)
        run.set_vision_workers(vision_workers, worker_logins, broker_url)
        await run.start_broker(broker_url, broker_restart, protocol)
        await run.start_vehicles(sitl=sitl, connect_base=connect_base)
        await run.connect_fleet()
        run.init_world()
        run.init_dispatcher()
        await run.start_publisher()
        run.init_riders()
        run.init_operator()
        run.init_eyes()
        if web:
            from runloop.web import start_web_view

            web_view = await start_web_view(run, web)  # bound now: a taken port is an error before flying
        try:
            async with asyncio.TaskGroup() as tg:
                if web:  # first, so that whatever ends the run also closes the server
                    tg.create_task(web_view.serve(stop), name="web")
                tg.create_task(run.dispatcher.run(stop), name="dispatcher")
                await run.wait_dispatcher_connected()  # before units publish retained presence (amqtt, docs/run.md)
                tg.create_task(run.recorder.run(stop), name="recorder")
                tg.create_task(run.operator.run(stop), name="operator")
                tg.create_task(run.riders.run(stop), name="riders")
                tg.create_task(run.drones.run(stop), name="drones")
                for eyes in run.eyes:
                    tg.create_task(eyes.run(stop), name=f"eyes-{eyes.drone_id}")
                tg.create_task(run.script_world(stop), name="world")
                tg.create_task(run.script_faults(stop), name="faults")
                tg.create_task(run.script_alarms(stop), name="alarms")
                if live:
                    tg.create_task(run.live(stop), name="live")
                tg.create_task(run.finish_when_done(stop), name="finish")
        except* Exception as failed:  # a stage crashed: the run ends, the report says which and why
            run.record_stage_errors(failed.exceptions)
    finally:
        stop.set()
        await run.shutdown()  # publisher, fleet, vehicles, broker, store: reverse order of start-up
        run.remove_signal_handlers()
    return run.write_report()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
