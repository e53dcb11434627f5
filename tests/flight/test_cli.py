"""`patrol fly` and `patrol fleet` as an operator runs them, against the simulator (the CLI in its
own process, the simulator in the test's event loop)."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from common.airframe import AirframeProfile
from mission_planner import read_plan, write_plan
from tests.flight.procedures import SPEEDUP, assert_near, connect, get_sortie

ROOT = Path(__file__).resolve().parents[2]


async def run_patrol(*args: str, timeout_s: float = 90.0) -> tuple[int, str, str]:
    """Run `patrol ARGS` in a child process; (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "patrol.py"), *args, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except asyncio.TimeoutError:
        proc.kill()
        raise
    return proc.returncode, out.decode(), err.decode()


async def test_patrol_fly_flies_a_planner_sortie_and_lands(sim_fleet, tmp_path):
    """A planner sortie flown end to end, as an operator does it: `patrol plan` for one grid cell,
    then `patrol fly --plan drone01/sortie01.plan` on a drone at that sortie's dock. Mission,
    fence (city boundary and no-fly zones) and rally go up verified; the drone takes off, flies
    AUTO with a progress line per item in order, lands and disarms at the dock; exit 0.
    Simulated 20x: the sortie is about five minutes of flight."""
    code, out, err = await run_patrol("plan", "--grids", str(ROOT / "mission_planner/samples/danyang_grids.geojson"),
                                      "--out", str(tmp_path / "plan"), "--drones", "1", "--cells", "DY-C0100",
                                      "--no-png", "--horizon-h", "0.5")
    assert code == 0, err
    plan = tmp_path / "plan" / "drone01" / "sortie01.plan"
    mission = read_plan(plan)
    dock = (mission.items[0].lat, mission.items[0].lon)
    fleet = await sim_fleet(count=1, speedup=20.0, home=(*dock, 10.0), battery_mah=AirframeProfile().pack_mah)
    sv = fleet[0]  # carrying the airframe profile's pack, as planned (test_energy: SITL's stock pack is refused)
    code, out, err = await run_patrol("fly", "--connect", sv.url, "--plan", str(plan), "--speedup", "20",
                                      "--drone-id", "drone01")
    assert code == 0, err
    n = len(mission.items) - 1
    assert "mission, fence and rally verified" in out and f"flown, {n}/{n} items" in out, out
    reached = [int(line.split("item ")[1].split("/")[0]) for line in out.splitlines() if " reached, alt " in line]
    assert reached == sorted(reached) and reached[0] == 1 and len(reached) >= n - 3, out
    assert sv.truth.landed and not sv.truth.armed
    assert_near(sv.truth.lat, sv.truth.lon, dock, 5.0, "landing point vs dock")
    # verified as ArduCopter stores it: LAND read back with param4 1, DO_CHANGE_SPEED frame 0
    kept = sv.mission.lists[0]
    assert kept[-1].command == 21 and kept[-1].param4 == 1.0
    assert all(it.frame == 0 for it in kept if it.command == 178) and any(it.command == 178 for it in kept)


async def test_patrol_fly_refuses_a_qgc_plan_item_by_item_and_uploads_nothing(sim_fleet):
    """A plan made in QGroundControl with items ArduCopter would refuse (NaN yaw on LOITER_TIME,
    CONDITION_CHANGE_ALT) or silently wrap (a servo PWM of 70000): exit 2, each item named with
    its reason, nothing uploaded, nothing armed."""
    fleet = await sim_fleet(count=1, speedup=SPEEDUP)
    sv = fleet[0]
    before = list(sv.mission.lists[0])
    plan = ROOT / "tests/planner/data/qgc_refused_items.plan"
    code, out, err = await run_patrol("fly", "--connect", sv.url, "--plan", str(plan), "--speedup", str(SPEEDUP))
    assert code == 2, err
    assert "item 2 (command 19): the vehicle refuses it (INVALID_PARAM4: NaN or infinite param4)" in err
    assert "item 3 (command 113): ArduCopter does not support CONDITION_CHANGE_ALT in a mission" in err
    assert "item 4 (command 183): param2 70000" in err
    assert sv.mission.lists[0] == before and not sv.truth.armed


async def test_patrol_fly_verify_only_uploads_and_does_not_fly(sim_fleet, tmp_path):
    """`patrol fly --verify-only`: mission, fence and rally verified on the vehicle, exit 0, the
    vehicle never armed, and not one parameter written (no failsafes, no fence enable)."""
    fleet = await sim_fleet(count=1, speedup=SPEEDUP)
    sv = fleet[0]
    watched = ("FS_GCS_ENABLE", "BATT_FS_LOW_ACT", "FENCE_ENABLE", "FENCE_TYPE")
    params_before = {name: sv.params.get(name) for name in watched}
    plan = write_plan(tmp_path / "s01.plan", get_sortie((sv.truth.lat, sv.truth.lon), [(50, 0)], name="s01"))
    code, out, err = await run_patrol("fly", "--connect", sv.url, "--plan", str(plan), "--verify-only",
                                      "--speedup", str(SPEEDUP))
    assert code == 0, err
    assert "mission, fence and rally verified" in out and "arming" not in out
    assert not sv.truth.armed and sv.truth.landed
    assert {name: sv.params.get(name) for name in watched} == params_before
    assert len(sv.mission.lists[0]) > 2 and sv.mission.lists[1]  # the sortie's lists are on the vehicle


async def test_patrol_fly_verifies_a_mission_planner_waypoints_file(sim_fleet):
    """A Mission Planner .waypoints (QGC WPL 110) goes up and verifies as ArduCopter keeps it."""
    fleet = await sim_fleet(count=1, speedup=SPEEDUP)
    sv = fleet[0]
    plan = ROOT / "tests/planner/data/mission_planner.waypoints"
    code, out, err = await run_patrol("fly", "--connect", sv.url, "--plan", str(plan), "--verify-only",
                                      "--speedup", str(SPEEDUP))
    assert code == 0, err
    assert [it.command for it in sv.mission.lists[0]] == [16, 22, 16, 178, 16, 19, 21]


async def test_patrol_fly_missing_plan_is_bad_input(tmp_path):
    code, _, err = await run_patrol("fly", "--connect", "tcp:127.0.0.1:9", "--plan", str(tmp_path / "none.plan"))
    assert code == 2 and "none.plan" in err


async def test_patrol_fleet_flies_each_drone_its_sorties_in_order(sim_fleet, tmp_path):
    """`patrol fleet`: drone directory i (sorted) flies on vehicle i (base port + 10 i), its
    sorties one after the other (land, re-arm, next); exit 0 when all are flown, and each vehicle
    ends up holding its own drone's last sortie."""
    fleet = await sim_fleet(count=2, speedup=20.0)
    for i, sv in enumerate(fleet):
        d = tmp_path / f"drone-0{i + 1}"
        d.mkdir()
        for j in (1, 2):
            write_plan(d / f"sortie0{j}.plan", get_sortie((sv.truth.lat, sv.truth.lon), [(30 * j + 10 * i, 0)],
                                                          alt_m=15, name=f"d{i}s{j}"))
    code, out, err = await run_patrol("fleet", "--plan-dir", str(tmp_path), "--connect-base", fleet[0].url,
                                      "--speedup", "20")
    assert code == 0, err
    assert "drone-01: 2/2 sorties flown" in out and "drone-02: 2/2 sorties flown" in out
    assert out.index("d0s1: flown") < out.index("d0s2: flown")
    v = await connect(fleet[1].url, drone_id="check", speedup=20.0)
    try:
        await v.mission.verify_sortie(read_plan(tmp_path / "drone-02" / "sortie02.plan"))
    finally:
        await v.close()
