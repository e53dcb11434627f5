"""`patrol sim vehicles` / `patrol sim sitl` and the SITL launcher (a real binary only with -m sitl)."""
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sim import SimError
from sim.sitl import SitlFleet, find_sitl_binary
from tests.fixtures.ports import free_port_block
from tests.sim.gcs import TestGcs

ROOT = Path(__file__).resolve().parents[2]


def test_no_sitl_binary_is_a_clear_error(monkeypatch, tmp_path):
    """Without ARDUPILOT_SITL or arducopter on PATH the launcher says how to get one."""
    monkeypatch.delenv("ARDUPILOT_SITL", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SimError, match="ARDUPILOT_SITL"):
        find_sitl_binary()
    with pytest.raises(SimError, match="does not exist"):
        find_sitl_binary(str(tmp_path / "arducopter"))


def test_patrol_sim_sitl_without_binary_exits_2_with_the_reason(tmp_path):
    """The CLI prints the reason and exits 2 rather than a traceback."""
    env = {**os.environ, "PATH": str(tmp_path)}
    env.pop("ARDUPILOT_SITL", None)
    out = subprocess.run([sys.executable, str(ROOT / "patrol.py"), "sim", "sitl", "--count", "1"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert out.returncode == 2
    assert "ARDUPILOT_SITL" in out.stderr and "Traceback" not in out.stderr


FAKE_SITL = textwrap.dedent("""\
    #!{python}
    # Stands in for arducopter: records its argv/cwd, then serves a built-in vehicle on 5760+10*I.
    import asyncio, json, os, sys
    sys.path.insert(0, {root!r})
    args = sys.argv[1:]
    json.dump({{"argv": args, "cwd": os.getcwd()}}, open("argv.json", "w"))
    i = int(args[args.index("-I") + 1])
    base = int(args[args.index("--base-port") + 1]) if "--base-port" in args else 5760
    from sim.vehicles import SimulatedFleet
    async def main():
        fleet = SimulatedFleet(count=i + 1, base_port=base, fast_start=True)
        fleet.vehicles = fleet.vehicles[i:]   # only instance i listens, as sysid i+1
        async with fleet:
            await asyncio.Event().wait()
    asyncio.run(main())
""")


async def test_launcher_runs_each_instance_in_its_own_dir_and_stops_them(tmp_path):
    """Each instance: own cwd, -I i, --model quad, --speedup, --home, --defaults; heartbeats; clean stop."""
    fake = tmp_path / "arducopter"
    fake.write_text(FAKE_SITL.format(python=sys.executable, root=str(ROOT)))
    fake.chmod(0o755)
    defaults = tmp_path / "copter.parm"
    defaults.write_text("FS_GCS_ENABLE 1\n")
    base = free_port_block(2, 10)
    fleet = SitlFleet(count=2, speedup=3, base_port=base, binary=str(fake), defaults=str(defaults),
                      workdir=str(tmp_path / "run"), heartbeat_timeout_s=30)
    async with fleet:
        import json

        for inst in fleet.instances:
            rec = json.loads((inst.workdir / "argv.json").read_text())
            argv = rec["argv"]
            assert rec["cwd"] == str(inst.workdir)
            assert argv[argv.index("-I") + 1] == str(inst.index)
            assert argv[argv.index("--model") + 1] == "quad"
            assert argv[argv.index("--speedup") + 1] == "3"
            assert argv[argv.index("--home") + 1].startswith("32.0,119.58,10")
            # the defaults file, then the airframe profile's pack on top of it
            assert argv[argv.index("--defaults") + 1] == f"{defaults},{inst.workdir / 'airframe.parm'}"
            assert (inst.workdir / "airframe.parm").read_text() == "BATT_CAPACITY 13000\nSIM_BATT_CAP_AH 13\n"
        link = await TestGcs.connect(fleet[1].url)
        hb = await link.wait_heartbeat(timeout=3)
        assert hb.get_srcSystem() == 2
        await link.close()
        procs = [inst.process for inst in fleet.instances]
    assert all(p.returncode is not None for p in procs)


@pytest.mark.sitl
async def test_real_sitl_answers_like_the_builtin_simulator():
    """With ARDUPILOT_SITL set: one real ArduCopter comes up on the same endpoint and arms refusal text."""
    if not os.environ.get("ARDUPILOT_SITL"):
        pytest.skip("ARDUPILOT_SITL not set: no ArduCopter SITL binary to run")
    base = free_port_block(1, 10)
    async with SitlFleet(count=1, base_port=base, speedup=1) as fleet:
        link = await TestGcs.connect(fleet[0].url)
        hb = await link.wait_heartbeat(timeout=10)
        assert (hb.type, hb.autopilot) == (2, 3)
        await link.close()


async def test_patrol_sim_vehicles_prints_endpoints_serves_them_and_stops_on_ctrl_c():
    """`patrol sim vehicles --count 2` prints one endpoint per vehicle, answers there, exits 0 on SIGINT."""
    base = free_port_block(2, 10)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "patrol.py"), "sim", "vehicles", "--count", "2", "--base-port", str(base),
        "--fast-start", "--params", "4.5", "--speedup", "2", cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        lines = []
        while not any("Ctrl-C" in line for line in lines):
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, (await proc.stderr.read()).decode()
            lines.append(line.decode())
        assert any(f"tcp:127.0.0.1:{base + 10}" in line and "sysid 2" in line for line in lines)
        link = await TestGcs.connect(f"tcp:127.0.0.1:{base + 10}")
        link.target = 2
        start = link.mark()
        link.mav.param_request_read_send(2, 1, b"WPNAV_SPEED", -1)
        pv = await link.wait_for("PARAM_VALUE", None, 3, start)
        assert pv.param_value == 1000.0 and pv.get_srcSystem() == 2
        await link.close()
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_bad_home_is_refused_by_name():
    """--home that is not LAT,LON,ALT exits 2 naming --home."""
    out = subprocess.run([sys.executable, str(ROOT / "patrol.py"), "sim", "vehicles", "--home", "32,abc"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 2 and "--home" in out.stderr


async def test_a_port_taken_by_another_process_is_an_error_and_nothing_starts(tmp_path):
    """SITL would fail to bind a taken port and we would talk to whatever holds it: refused up front."""
    fake = tmp_path / "arducopter"
    fake.write_text(FAKE_SITL.format(python=sys.executable, root=str(ROOT)))
    fake.chmod(0o755)
    base = free_port_block(2, 10)
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", base + 10))
    squatter.listen()
    try:
        fleet = SitlFleet(count=2, base_port=base, binary=str(fake), workdir=str(tmp_path / "run"))
        with pytest.raises(SimError, match=f"port {base + 10} .*already taken"):
            await fleet.start()
        assert not list((tmp_path / "run").glob("*/argv.json"))  # no instance was started
    finally:
        squatter.close()


async def test_a_failed_start_keeps_the_log_its_error_names(tmp_path):
    """An instance that dies at start: the error names its log, and the log is still there to read."""
    fake = tmp_path / "arducopter"
    fake.write_text(f"#!{sys.executable}\nimport sys\nprint('Unable to bind port: pretend failure')\nsys.exit(3)\n")
    fake.chmod(0o755)
    fleet = SitlFleet(count=1, base_port=free_port_block(1, 10), binary=str(fake), heartbeat_timeout_s=10)
    with pytest.raises(SimError, match="exited with 3") as err:
        await fleet.start()
    log_path = Path(str(err.value).rsplit("see ", 1)[1])
    try:
        assert "pretend failure" in log_path.read_text()
    finally:
        shutil.rmtree(log_path.parent.parent)
