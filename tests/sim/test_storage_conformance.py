"""The simulator keeps each mission, fence and rally item exactly as the real ArduCopter did.

Replays every line of ../shared/ardupilot/mission_item_roundtrip.jsonl (52 commands x 7 variants,
fence and rally lists, recorded on ArduCopter 4.8.0-dev SITL by gcs_script_roundtrip.py) in the
recorded order against one simulated vehicle: same upload, same MISSION_ACK, same read-back
(frame, command, params, x, y, z, autocontinue), field for field. The home item (the vehicle's
own position) is not part of storage and is not compared.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from common.ardupilot_storage import WireItem
from tests.sim.gcs import TestGcs

REPO = Path(__file__).resolve().parents[2]
ROUNDTRIP = Path(os.environ.get("ARDUPILOT_TRACES", REPO.parent / "shared" / "ardupilot")) / "mission_item_roundtrip.jsonl"
KINDS = {"mission": 0, "fence": 1, "rally": 2}


def load_roundtrip() -> list[dict]:
    if not ROUNDTRIP.exists():
        pytest.skip(f"{ROUNDTRIP} not found (the shared ArduPilot recordings live in ../shared/ardupilot)")
    with ROUNDTRIP.open() as f:
        return [r for r in map(json.loads, f) if r["kind"] in KINDS and "sent" in r]


def wire(d: dict) -> WireItem:
    p = [math.nan if v in ("nan", "NaN") else float(v) for v in d["p"]]
    return WireItem(d["command"], d["frame"], *p, x=d["x"], y=d["y"], z=d["z"])


def as_record(m) -> dict:
    """A MISSION_ITEM_INT in the recording's shape."""
    return dict(frame=m.frame, command=m.command, p=[m.param1, m.param2, m.param3, m.param4], x=m.x, y=m.y,
                z=m.z, autocontinue=m.autocontinue, current=m.current)


async def upload(link: TestGcs, items: list[WireItem], mission_type: int) -> int:
    """The recorder's upload: MISSION_COUNT, answer each request, return the MISSION_ACK."""
    since = link.mark()
    link.mav.mission_count_send(link.target, 1, len(items), mission_type)
    while True:
        m = await link.wait_for(("MISSION_REQUEST", "MISSION_REQUEST_INT", "MISSION_ACK"),
                                lambda m: m.mission_type == mission_type, 3, since)
        since = link.mark()
        if m.get_type() == "MISSION_ACK":
            return m.type
        it = items[m.seq]
        link.mav.mission_item_int_send(link.target, 1, m.seq, it.frame, it.command, 0, 1, *it.params,
                                       it.x, it.y, it.z, mission_type)


async def test_every_recorded_item_reads_back_and_acks_as_on_arducopter(sim_fleet):
    records = load_roundtrip()
    fleet = await sim_fleet(count=1, speedup=20.0)
    await fleet.wait_armable(10)
    link = await TestGcs.connect(fleet[0].url)
    home = WireItem(16, 0, x=320000000, y=1195800000, z=10)
    problems = []
    try:
        for r in records:
            mt = KINDS[r["kind"]]
            sent = [home, wire(r["sent"])] if mt == 0 else [wire(s) for s in r["sent"]]
            ack = await upload(link, sent, mt)
            back = None
            if ack == 0:
                got = [as_record(m) for m in await link.download(mt)]
                back = got[1] if mt == 0 else got
            want = r["back"]
            name = f"{r['kind']} {r.get('command', '')} {r['variant']}"
            if ack != r["ack"]:
                problems.append(f"{name}: MISSION_ACK {ack}, ArduCopter {r['ack']}")
            elif back != want:
                problems.append(f"{name}: read back {back}\n    ArduCopter {want}")
    finally:
        await link.close()
    assert len(records) == 52 * 7 + 6
    assert not problems, f"{len(problems)} of {len(records)} differ:\n" + "\n".join(problems)


def test_storage_model_docstring_examples_hold():
    """The examples in common/ardupilot_storage.py run and give what they show."""
    import doctest

    import common.ardupilot_storage

    result = doctest.testmod(common.ardupilot_storage)
    assert result.failed == 0 and result.attempted > 0
