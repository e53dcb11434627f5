"""Fuzzing with figures (issue 15): generated inputs into every parser that takes outside input.
For each target: zero crashes (only the package's own error escapes), zero hangs (2 s of CPU per
input), every rejection named (the error names the input and what is wrong with it).

The default run tries 25-100 inputs per target; `-m soak` tries 10,000 each and prints the
figures (inputs, accepted, rejected, crashes, hangs, unnamed rejections, seconds):

    nice -n 10 .venv/bin/python -m pytest -q -s -m soak tests/fuzz -p no:cacheprovider
"""
from __future__ import annotations

import pytest

from tests.fuzz.fuzzkit import HEADER, Figures, run_target
from tests.fuzz.targets import TARGETS

SHORT_INPUTS = {"mqtt-controller": 60, "mqtt-rider": 60, "grid-geojson": 25, "plan-file": 60, "scenario-yaml": 40,
                "mavlink-flight": 100, "mavlink-signed": 100, "mavlink-sim": 100}
SOAK_INPUTS = 10_000


def targets():
    return sorted(TARGETS)


def fuzz(name: str, inputs: int, seed: int) -> Figures:
    target = TARGETS[name]()
    try:
        return run_target(name, target.generate, target.check, inputs=inputs, seed=seed)
    finally:
        target.close()


def assert_survived(fig: Figures) -> None:
    """No crash, no hang, no rejection that names nothing; the examples reproduce the failures."""
    assert fig.ok, f"{fig.target}: {fig.crashes} crashes, {fig.hangs} hangs, {fig.unnamed} unnamed rejections\n" + \
        "\n".join(fig.examples)
    assert fig.accepted > 0 and fig.rejected > 0, f"{fig.target}: the inputs reached only one side ({fig.row()})"


@pytest.mark.parametrize("name", targets())
def test_generated_inputs_are_accepted_or_refused_by_name(name):
    """A short run per target (a few hundred inputs in all, a few seconds), fixed seed so a failure
    reproduces."""
    assert_survived(fuzz(name, SHORT_INPUTS[name], seed=15))


@pytest.mark.soak
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("name", targets())
def test_ten_thousand_inputs_per_target(name):
    """10,000 inputs per target (seed 2026); prints the target's figures."""
    fig = fuzz(name, SOAK_INPUTS, seed=2026)
    print(f"\n{HEADER}\n{fig.row()}")
    assert_survived(fig)


def test_the_fuzz_kit_counts_crashes_hangs_and_unnamed_rejections():
    """The figures can say no: a foreign exception is a crash, an endless loop a hang (CPU limit),
    a rejection naming nothing is counted, each with an example to reproduce it."""
    from tests.fuzz.fuzzkit import ACCEPTED, Rejected

    def check(n):
        if n == 0:
            return ACCEPTED
        if n == 1:
            return Rejected("input.yaml: fleet.drones: must be at least 1", True)
        if n == 2:
            return Rejected("bad", False)
        if n == 3:
            raise KeyError("incident")
        while True:
            pass

    fig = run_target("selftest", lambda rng: rng.randrange(5), check, inputs=40, seed=1, cpu_limit_s=0.05)
    assert fig.inputs == 40 and fig.accepted + fig.rejected + fig.crashes + fig.hangs == 40
    assert min(fig.accepted, fig.rejected, fig.crashes, fig.hangs, fig.unnamed) > 0 and not fig.ok
    assert any("KeyError: 'incident'" in e for e in fig.examples) and any("hang" in e for e in fig.examples)
