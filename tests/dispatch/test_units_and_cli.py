"""Unit registry and ranking rules, drone state, unlocated incidents, and the command line."""
from __future__ import annotations

import argparse
import asyncio

import pytest

from common.geo import offset
from common.values import IncidentKind, Pose
from dispatch import cli
from dispatch.assign import StraightLineEta, rank_units
from dispatch.errors import DispatchError
from dispatch.registry import UnitRegistry
from dispatch.rider import GpsTrack
from tests.dispatch.conftest import ORIGIN, make_incident, wait_until


def test_silent_busy_and_loaded_units_are_not_assignable():
    """A unit silent longer than unit_silence_s, one reporting busy, and one at max load are skipped."""
    now = [1000.0]
    reg = UnitRegistry(silence_s=30, clock=lambda: now[0])
    reg.update_location("FRESH", 32.0, 119.58, 1000, "available")
    reg.update_location("SILENT", 32.0, 119.58, 960, "available", now_s=960.0)
    reg.update_location("BUSY", 32.0, 119.58, 1000, "busy")
    reg.update_location("LOADED", 32.0, 119.58, 1000, "available")
    reg.assign("LOADED", "inc-1")
    assert [u.unit_id for u in reg.assignable(max_load=1)] == ["FRESH"]
    now[0] = 1031.0
    assert reg.assignable(max_load=1) == []  # FRESH has now been silent 31 s too


def test_ranking_prefers_eta_then_penalises_load():
    """Nearest first; a nearer unit already holding an incident ranks behind a free one within the penalty."""
    reg = UnitRegistry(silence_s=30)
    for uid, north in (("A", 100), ("B", 300), ("C", 2000)):
        reg.update_location(uid, *offset(*ORIGIN, north, 0), 0, "available")
    inc = make_incident("x")
    eta = StraightLineEta(speed_m_s=10)
    assert [c.unit.unit_id for c in rank_units(inc, reg.all(), eta)] == ["A", "B", "C"]
    reg.assign("A", "other")
    ranked = rank_units(inc, reg.all(), eta, load_penalty_s=60)
    assert [c.unit.unit_id for c in ranked] == ["B", "A", "C"]
    assert ranked[0].eta_s == pytest.approx(30, rel=0.01)
    assert rank_units(inc, reg.all(), eta, exclude=["A", "B"])[0].unit.unit_id == "C"


@pytest.mark.mosquitto
async def test_unlocated_incident_waits_for_a_position(rig):
    """An incident without telemetry is recorded, not dispatched; the update with a position dispatches it."""
    from dataclasses import replace

    await rig.start_dispatcher()
    unit = await rig.add_unit("M01", 100, 0)
    await rig.wait_units_known("M01")
    inc = make_incident("blind-1", IncidentKind.INTRUSION)
    await rig.publish(replace(inc, lat=None, lon=None, error_m=None))
    await wait_until(lambda: rig.get_case_status("blind-1") == "unlocated", 3, "unlocated incident recorded")
    await asyncio.sleep(0.3)
    assert unit.shown == []
    from common.values import IncidentState
    await rig.publish(inc, IncidentState.UPDATE)
    await wait_until(lambda: unit.shown, 3, "dispatch once located")


@pytest.mark.mosquitto
async def test_drone_state_is_published_retained_with_overwatch(rig):
    """Drone poses fed by the run loop appear retained on drones/{id}/state, naming the incident held."""
    d = await rig.start_dispatcher()
    await rig.publish(make_incident("fire-d", drone_id="D3"))
    await wait_until(lambda: "fire-d" in d.cases, 3, "incident open")
    d.update_drone_state(Pose(time_s=1.0, lat=32.0, lon=119.58, alt_rel_m=60, alt_msl_m=70, drone_id="D3"),
                         mode="GUIDED", battery_pct=70)
    await asyncio.sleep(0.5)
    probe = await rig.probe("patrol/drones/+/state")  # subscribes late: retained copy must arrive
    await wait_until(lambda: probe.get_bodies("D3/state"), 3, "retained drone state")
    state = probe.get_bodies("D3/state")[0]
    assert state["overwatch_incident_id"] == "fire-d" and state["mode"] == "GUIDED"


def build(argv):
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    return parser.parse_args(argv)


def test_cli_rejects_bad_broker_url_and_timeout(capsys):
    """`patrol dispatch` with a bad URL or a negative ack timeout exits 2 naming the problem."""
    assert cli.cmd_dispatch(build(["dispatch", "--broker", "http://x"])) == 2
    assert "scheme must be mqtt:// or mqtts://" in capsys.readouterr().out
    assert cli.cmd_dispatch(build(["dispatch", "--ack-timeout", "-1"])) == 2
    assert "ack_timeout_s" in capsys.readouterr().out


def test_cli_broker_config_writes_files(tmp_path, capsys):
    """`patrol broker-config` writes config, passwd, acl and credentials; a re-run keeps the passwords."""
    argv = ["broker-config", "--out", str(tmp_path / "b"), "--units", "M01,M02", "--tls-port", "0"]
    assert cli.cmd_broker_config(build(argv)) == 0
    first = (tmp_path / "b" / "credentials.yaml").read_text()
    assert "M02" in (tmp_path / "b" / "acl").read_text()
    assert "allow_anonymous false" in (tmp_path / "b" / "mosquitto.conf").read_text()
    assert cli.cmd_broker_config(build(argv)) == 0
    assert (tmp_path / "b" / "credentials.yaml").read_text() == first
    assert cli.cmd_broker_config(build(["broker-config", "--out", str(tmp_path / "c"), "--units", "bad/id"])) == 2
    assert "not a valid id" in capsys.readouterr().out


def test_cli_broker_config_keeps_plaintext_on_loopback(tmp_path, capsys):
    """`--plain-bind 0.0.0.0` is refused unless `--insecure-plain-on-network`; `--rotate` renews certificates."""
    argv = ["broker-config", "--out", str(tmp_path / "b"), "--units", "M01", "--tls-port", "0", "--plain-bind", "0.0.0.0"]
    assert cli.cmd_broker_config(build(argv)) == 2
    assert "--insecure-plain-on-network" in capsys.readouterr().out
    assert cli.cmd_broker_config(build([*argv, "--insecure-plain-on-network"])) == 0
    assert "listener 1883 0.0.0.0" in (tmp_path / "b" / "mosquitto.conf").read_text()


def test_cli_rider_logs_in_as_its_unit(tmp_path, capsys):
    """`patrol rider` with a password logs in as its unit; another unit's user name is refused."""
    pw = tmp_path / "pw"
    pw.write_text("secret")
    argv = ["rider", "--unit", "M07", "--password-file", str(pw), "--username", "M08"]
    assert cli.cmd_rider(build(argv)) == 2
    assert "a unit logs in as itself" in capsys.readouterr().out


def test_gps_file_errors_name_the_line(tmp_path):
    """A GPS replay file with a bad line is refused naming file and line; good lines load."""
    good = tmp_path / "good.csv"
    good.write_text("# lat,lon\n32.0,119.58\n{\"lat\": 32.001, \"lon\": 119.581}\n")
    assert GpsTrack.load(good).points == [(32.0, 119.58), (32.001, 119.581)]
    bad = tmp_path / "bad.csv"
    bad.write_text("32.0,119.58\nnorth,east\n")
    with pytest.raises(DispatchError, match=r"bad.csv:2"):
        GpsTrack.load(bad)


def test_config_file_rejects_unknown_keys_by_name(tmp_path):
    """A YAML config with a misspelt key is refused naming the key; a good one loads typed values."""
    from dispatch.config import load_config

    good = tmp_path / "good.yaml"
    good.write_text("broker:\n  url: mqtts://broker.example:8883\ndispatch:\n  ack_timeout_s: 12\n")
    broker, dispatch = load_config(good)
    assert broker.tls and broker.port == 8883 and dispatch.ack_timeout_s == 12
    bad = tmp_path / "bad.yaml"
    bad.write_text("dispatch:\n  ack_timout_s: 12\n")
    with pytest.raises(DispatchError, match="ack_timout_s"):
        load_config(bad)
    worse = tmp_path / "worse.yaml"
    worse.write_text("dispatcher: {}\n")
    with pytest.raises(DispatchError, match="unknown section"):
        load_config(worse)
