"""The `patrol` command line. Thin: each package registers its own subcommands.

    patrol plan     grid cells -> sorties, .plan/.waypoints, plan.png       (mission_planner)
    patrol sim      built-in ArduCopter-compatible vehicles, SITL launcher  (sim)
    patrol fly      fly one .plan on one vehicle; `patrol fleet` a plan dir  (flight)
    patrol watch    incidents in a video / stream                          (vision)
    patrol dispatch the MQTT controller; `patrol rider` the officer's app   (dispatch)
    patrol demo     a full simulated patrol on embedded defaults
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

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
    demo = sub.add_parser("demo", help="a full simulated patrol on embedded defaults")
    demo.add_argument("--out", default="demo-out", help="output directory (default demo-out)")
    demo.set_defaults(func=run_demo)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency, not a package not written yet
                raise
            continue
        module.register(sub)
    return parser


def run_demo(args: argparse.Namespace) -> int:
    """Until the full patrol loop lands: plan the bundled Danyang grid and draw the map."""
    from mission_planner.cli import demo_plan

    return demo_plan(args.out)


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
