"""The simulator answers the recorded GCS sessions as the real ArduCopter did (content, order, timing)."""
import pytest

from tests.sim.conformance import (
    SESSIONS, SHAPE_FIELDS, Replayer, compare, first_of_each_type, key_events, load_reduced, load_shapes,
    replay_session1, replay_session2,
)
from tests.sim.gcs import TestGcs

REPLAY_SPEEDUP = 40.0


async def _replay(sim_fleet, session: int, script, speedup: float = REPLAY_SPEEDUP):
    fleet = await sim_fleet(count=1, speedup=speedup, fast_start=False)
    link = await TestGcs.connect(fleet[0].url)
    r = Replayer(link, fleet, SESSIONS[session][1])
    try:
        await script(r)
    finally:
        r.close()
        await link.close()
    return r, key_events(r.records, 1.0)  # replay times are already vehicle seconds


async def test_session1_mission_flow_replays_like_the_real_arducopter(sim_fleet):
    """Streams, params, early arming, mission/fence/rally transfer and errors, AUTO, retask, failsafe, RTL."""
    r, events = await _replay(sim_fleet, 1, replay_session1)
    problems = compare(load_reduced(1), events)
    assert not problems, "\n".join(problems)
    assert_same_message_types_and_shapes(load_shapes(1), first_of_each_type(r.records))


def assert_same_message_types_and_shapes(recorded: dict, replayed: dict) -> None:
    """Every message type the real vehicle sent is sent (TERRAIN_REQUEST aside: no terrain database),
    and the first of each carries the same values in the fields that matter."""
    missing = set(recorded) - set(replayed) - {"TERRAIN_REQUEST"}
    assert not missing, f"never sent: {sorted(missing)}"
    for mtype, fields in SHAPE_FIELDS.items():
        for f in fields:
            assert replayed[mtype][f] == pytest.approx(recorded[mtype][f], abs=1e-3), (mtype, f)


async def test_session2_modes_roi_fence_battery_replays_like_the_real_arducopter(sim_fleet):
    """Param list, DO_SET_MODE, home wait, fence, arming wait, ROI overwatch, circle, fence refusal, battery."""
    r, events = await _replay(sim_fleet, 2, replay_session2)
    assert len(set(r.param_names)) == 1368
    problems = compare(load_reduced(2), events)
    assert not problems, "\n".join(problems)


@pytest.mark.soak
async def test_session1_at_recorded_speed(sim_fleet):
    """The same replay at 1x (about 5 minutes): timing as recorded, nothing compressed."""
    _, events = await _replay(sim_fleet, 1, replay_session1, speedup=1.0)
    problems = compare(load_reduced(1), events, rel_tol=0.2, abs_tol_s=1.0)
    assert not problems, "\n".join(problems)
