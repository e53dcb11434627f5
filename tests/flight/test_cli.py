"""`patrol fly` and `patrol fleet` as an operator runs them, against the simulator (the CLI in its
own process, the simulator in the test's event loop)."""
from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import replace
from pathlib import Path

from common.airframe import AirframeProfile
from common.values import MissionItem
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


async def test_patrol_fly_refused_plan_exits_with_the_vehicle_reason(sim_fleet, tmp_path):
    """A plan with a command the vehicle does not support: nothing flies, exit 1, and the message
    carries the vehicle's MISSION_ACK result and the item."""
    fleet = await sim_fleet(count=1, speedup=SPEEDUP)
    sv = fleet[0]
    good = get_sortie((sv.truth.lat, sv.truth.lon), [(50, 0)])
    bad = replace(good, items=good.items[:2] + (MissionItem(31999, alt_m=20),) + good.items[2:])
    plan = write_plan(tmp_path / "bad.plan", bad)
    code, out, err = await run_patrol("fly", "--connect", sv.url, "--plan", str(plan), "--speedup", str(SPEEDUP))
    assert code == 1
    assert "UNSUPPORTED at item 2 (command 31999)" in err
    assert not sv.truth.armed


async def test_patrol_fly_verify_only_uploads_and_does_not_fly(sim_fleet, tmp_path):
    """`patrol fly --verify-only`: mission, fence and rally verified on the vehicle, exit 0, and
    the vehicle never armed."""
    fleet = await sim_fleet(count=1, speedup=SPEEDUP)
    sv = fleet[0]
    plan = write_plan(tmp_path / "s01.plan", get_sortie((sv.truth.lat, sv.truth.lon), [(50, 0)], name="s01"))
    code, out, err = await run_patrol("fly", "--connect", sv.url, "--plan", str(plan), "--verify-only",
                                      "--speedup", str(SPEEDUP))
    assert code == 0, err
    assert "mission, fence and rally verified" in out and "arming" not in out
    assert not sv.truth.armed and sv.truth.landed


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
