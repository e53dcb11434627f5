"""Planner sorties on a real ArduCopter SITL and its battery (marker `sitl`).

Set ARDUPILOT_SITL to the arducopter binary; SITL_SPEEDUP (default 1) sets its speedup. A planner
sortie of the sample grid is ~5 min of flight plus ~45 s of SITL start-up (vehicle time).
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from mission_planner import read_plan
from tests.fixtures.ports import free_port_block
from tests.flight.procedures import sitl_target
from tests.flight.test_cli import run_patrol

pytestmark = pytest.mark.sitl
SPEEDUP = float(os.environ.get("SITL_SPEEDUP", "1"))
ROOT = Path(__file__).resolve().parents[2]


def sitl_binary() -> str:
    target = sitl_target()
    if target.startswith(("tcp:", "udp")):
        pytest.skip("ARDUPILOT_SITL is a URL: these tests start SITL themselves and need the binary")
    return target


@pytest.fixture(scope="module")
def planned_sortie(tmp_path_factory) -> Path:
    from patrol import main

    out = tmp_path_factory.mktemp("plan")
    assert main(["plan", "--grids", str(ROOT / "mission_planner/samples/danyang_grids.geojson"), "--out", str(out),
                 "--drones", "1", "--cells", "DY-C0100", "--no-png", "--horizon-h", "0.5"]) == 0
    return out / "drone01" / "sortie01.plan"


async def start_patrol_sim_sitl(home: tuple[float, float], port: int, *extra: str):
    """`patrol sim sitl` in its own process, as a trainer runs it; (process, its endpoint URL)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "patrol.py"), "sim", "sitl", "--count", "1", "--base-port", str(port),
        "--home", f"{home[0]},{home[1]},10", "--speedup", f"{SPEEDUP:g}", "--binary", sitl_binary(), *extra,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    lines = []
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
        lines.append(line)
        if not line:
            raise AssertionError("patrol sim sitl ended: " + "".join(lines))
        if "instance 0:" in line:
            assert "BATT_CAPACITY" in line and "SIM_BATT_CAP_AH" in line, line
            return proc, line.split()[4]


async def stop(proc) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        await asyncio.wait_for(proc.wait(), 20)
    except asyncio.TimeoutError:
        proc.kill()


async def test_planner_sortie_flown_to_disarm_on_patrol_sim_sitl(planned_sortie):
    """`patrol sim sitl` gives SITL the profile's pack; the planner's sortie is verified, flown
    and landed, `patrol fly` exits 0."""
    mission = read_plan(planned_sortie)
    proc, url = await start_patrol_sim_sitl((mission.items[0].lat, mission.items[0].lon), free_port_block(1))
    try:
        code, out, err = await run_patrol("fly", "--connect", url, "--plan", str(planned_sortie),
                                          "--speedup", f"{SPEEDUP:g}", timeout_s=1200 / SPEEDUP + 120)
        assert code == 0, (out, err)
        assert "mAh usable (BATT_CAPACITY 13000 mAh" in out and "flown" in out, out
    finally:
        await stop(proc)


async def test_energy_refusal_on_a_stock_pack_sitl(planned_sortie, tmp_path):
    """SITL with the stock 3300 mAh pack: the same sortie is refused before arming, exit 1."""
    mission = read_plan(planned_sortie)
    stock = tmp_path / "stock.yaml"
    stock.write_text("pack_mah: 3300\n")  # as stock SITL's BATT_CAPACITY
    proc, url = await start_patrol_sim_sitl((mission.items[0].lat, mission.items[0].lon), free_port_block(1),
                                            "--airframe", str(stock))
    try:
        code, out, err = await run_patrol("fly", "--connect", url, "--plan", str(planned_sortie),
                                          "--speedup", f"{SPEEDUP:g}", timeout_s=180)
        assert code == 1, (out, err)
        assert "does not fit the battery" in err and "BATT_CAPACITY 3300 mAh" in err and "not armed" in err, err
    finally:
        await stop(proc)
