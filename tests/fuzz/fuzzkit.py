"""A small seeded fuzzer with figures: generated inputs for one target, each run under a CPU-time
limit, sorted into accepted, rejected (with the package's own error, naming what is wrong),
crashes (anything else escaping, or a rejection that names nothing) and hangs.

Inputs are mutations of valid seeds (structure-aware: values swapped for edge cases, keys dropped,
added or renamed, lists cut or repeated; then byte-level: truncated, bytes flipped or inserted),
random JSON and random bytes, so that both the parser and the code behind it are reached.
"""
from __future__ import annotations

import copy
import json
import math
import random
import signal
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EDGE_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 255, 256, 65535, 2**31, -2**31 - 1, 2**63, -2**63, 2**64, 10**30,
    0.5, -0.0, 1e-320, 1e308, -1e308, math.nan, math.inf, -math.inf, 90.0000001, -90.5, 180.5, -181.0, 360.1,
    "", " ", "x" * 5000, "\x00", "\u202e", "\U0001f4a5", "../../etc/passwd", "NaN", "1e999", "null", "{}",
    "a/b#+", "drone01", "M01", [], {}, [[]], [0, 0], [1.0, 2.0, 3.0], {"type": "Point"}, [None] * 3,
]


class Hang(Exception):
    """An input ran longer than the CPU-time limit."""


@contextmanager
def cpu_limit(seconds: float):
    """Raise Hang in this (main) thread after `seconds` of CPU time. SIGVTALRM, not SIGALRM, so
    pytest-timeout's own alarm is left alone; an endless loop burns CPU, so it is caught."""
    def on_alarm(signum, frame):
        raise Hang(f"over {seconds} s of CPU")

    previous = signal.signal(signal.SIGVTALRM, on_alarm)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


@dataclass
class Rejected:
    """The target refused the input with its own error; `message` is what the user is told."""

    message: str
    named: bool  # the message names the input (topic, file) and what is wrong with it


ACCEPTED = "accepted"


@dataclass
class Figures:
    target: str
    inputs: int = 0
    accepted: int = 0
    rejected: int = 0
    crashes: int = 0
    hangs: int = 0
    unnamed: int = 0  # rejections whose message does not say what is wrong (counted as failures)
    time_s: float = 0.0
    examples: list[str] = field(default_factory=list)  # the first few failures, to reproduce

    @property
    def ok(self) -> bool:
        return self.crashes == 0 and self.hangs == 0 and self.unnamed == 0

    def row(self) -> str:
        return (f"{self.target:<16} {self.inputs:>7} {self.accepted:>8} {self.rejected:>8} {self.crashes:>7} "
                f"{self.hangs:>5} {self.unnamed:>7} {self.time_s:>8.1f}")


HEADER = f"{'target':<16} {'inputs':>7} {'accepted':>8} {'rejected':>8} {'crashes':>7} {'hangs':>5} {'unnamed':>7} {'time_s':>8}"


def run_target(name: str, generate: Callable[[random.Random], Any], check: Callable[[Any], Any], *,
               inputs: int, seed: int = 15, cpu_limit_s: float = 2.0, keep_examples: int = 5) -> Figures:
    """Run `check(generate(rng))` for `inputs` inputs; check returns ACCEPTED or a Rejected and
    raises anything else on a crash."""
    fig = Figures(name)
    rng = random.Random(f"{name}:{seed}")
    start = time.perf_counter()
    for i in range(inputs):
        data = generate(rng)
        fig.inputs += 1
        try:
            with cpu_limit(cpu_limit_s):
                outcome = check(data)
        except (Hang, TimeoutError):  # CPU spent, or an await that never finished (wait_for in check)
            fig.hangs += 1
            _keep(fig, keep_examples, f"input {i}: hang: {_short(data)}")
            continue
        except Exception as exc:  # what the fuzz is for: anything but the package's own error
            fig.crashes += 1
            where = traceback.extract_tb(exc.__traceback__)[-1]
            _keep(fig, keep_examples, f"input {i}: {type(exc).__name__}: {exc!s:.300} at "
                                      f"{Path(where.filename).name}:{where.lineno} <- {_short(data)}")
            continue
        if outcome == ACCEPTED:
            fig.accepted += 1
        elif isinstance(outcome, Rejected):
            fig.rejected += 1
            if not outcome.named:
                fig.unnamed += 1
                _keep(fig, keep_examples, f"input {i}: unnamed rejection {outcome.message!r:.300} <- {_short(data)}")
        else:
            raise TypeError(f"check returned {outcome!r}")
    fig.time_s = time.perf_counter() - start
    return fig


def _keep(fig: Figures, limit: int, text: str) -> None:
    if len(fig.examples) < limit:
        fig.examples.append(text)


def _short(data: Any) -> str:
    return repr(data)[:300]


# ---------------------------------------------------------------------------------- generators
def random_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.45:
        return rng.choice(EDGE_VALUES) if rng.random() < 0.6 else rng.uniform(-1e4, 1e4)
    if roll < 0.7:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["id", "type", "kind", "lat", "lon", "state", "x", "", "schema", "properties", "geometry"]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def mutate_value(value: Any, rng: random.Random, rate: float) -> Any:
    """A deep copy of `value` with about `rate` of its nodes changed."""
    if rng.random() < rate:
        choice = rng.random()
        if choice < 0.6:
            return rng.choice(EDGE_VALUES)
        if choice < 0.8 and isinstance(value, (int, float)) and not isinstance(value, bool):
            return value * rng.choice([-1, 10, 1e6, 0.5]) + rng.choice([0, 1e-7, -1e-7, 1])
        return random_json(rng, 2)
    if isinstance(value, dict):
        out = {k: mutate_value(v, rng, rate) for k, v in value.items()}
        if out and rng.random() < rate:
            del out[rng.choice(list(out))]
        if rng.random() < rate:
            out[rng.choice(["extra", "_type", "id", "kind", "priority", "zzz"])] = random_json(rng, 2)
        return out
    if isinstance(value, list):
        out = [mutate_value(v, rng, rate) for v in value]
        if out and rng.random() < rate:
            op = rng.choice(["cut", "dup", "shuffle", "empty"])
            if op == "cut":
                out = out[:rng.randint(0, len(out) - 1)]
            elif op == "dup":
                out = out + out[: rng.randint(1, len(out))]
            elif op == "shuffle":
                rng.shuffle(out)
            else:
                out = []
        return out
    return copy.deepcopy(value)


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            break
        op = rng.random()
        at = rng.randrange(len(buf))
        if op < 0.3:
            buf = buf[:at]  # truncated
        elif op < 0.6:
            buf[at] = rng.randrange(256)
        elif op < 0.8:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            del buf[at:at + rng.randint(1, 16)]
    return bytes(buf)


def random_bytes(rng: random.Random, max_len: int = 300) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, max_len)))


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def generate_document(rng: random.Random, seeds: list[Any], serialize: Callable[[Any], bytes] = json_bytes) -> bytes:
    """One input derived from `seeds`: mostly structural mutations (some light, so a share stays
    valid), then byte-level ones, random JSON and random bytes."""
    roll = rng.random()
    seed = rng.choice(seeds)
    if roll < 0.15:
        return serialize(seed)
    if roll < 0.40:
        return serialize(mutate_value(seed, rng, 0.03))
    if roll < 0.70:
        return serialize(mutate_value(seed, rng, 0.2))
    if roll < 0.88:
        return mutate_bytes(serialize(seed), rng)
    if roll < 0.95:
        return serialize(random_json(rng))
    return random_bytes(rng)
