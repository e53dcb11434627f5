"""`patrol plan` as an operator runs it: exit codes, what is written, what is printed."""
import json
import subprocess
import sys
from pathlib import Path

from mission_planner import read_plan, read_waypoints
from mission_planner.cli import demo_plan

from .gridkit import small_grid

ROOT = Path(__file__).resolve().parents[2]


def run_patrol(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / "patrol.py"), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def write_grid(tmp_path, data) -> Path:
    path = tmp_path / "grid.geojson"
    path.write_text(json.dumps(data))
    return path


def test_plan_writes_missions_map_and_summary(tmp_path):
    """A clean grid: exit 0, plan.json/.geojson/.png, a .plan and .waypoints per sortie, --json summary."""
    out = tmp_path / "out"
    res = run_patrol("plan", "--grids", write_grid(tmp_path, small_grid()), "--drones", 2, "--out", out,
                     "--time-cap-s", 0.05, "--horizon-h", 1, "--json")
    assert res.returncode == 0, res.stderr
    assert "sweeping" in res.stderr and "plan.png" in res.stderr  # progress and where things are
    printed = json.loads(res.stdout)
    summary = json.loads((out / "plan.json").read_text())
    assert printed["totals"]["sorties"] == summary["totals"]["sorties"] > 0
    assert printed["drones"] == summary["drones"]
    assert (out / "plan.png").stat().st_size > 10_000
    assert json.loads((out / "plan.geojson").read_text())["type"] == "FeatureCollection"
    for drone in summary["drones"]:
        for sortie in drone["sorties"]:
            mission = read_plan(out / sortie["files"]["plan"])
            assert list(mission.grid_ids) == sortie["grid_ids"]
            assert read_waypoints(out / sortie["files"]["waypoints"]).items == mission.items


def test_invalid_grid_exits_2_lists_every_problem_and_writes_nothing(tmp_path):
    """Two broken features: exit 2, both named on stderr, no output directory."""
    data = small_grid()
    data["features"][0]["geometry"]["coordinates"][0].pop()
    data["features"][2]["properties"]["kind"] = "lake"
    out = tmp_path / "out"
    res = run_patrol("plan", "--grids", write_grid(tmp_path, data), "--out", out)
    assert res.returncode == 2
    assert "feature 0 (grid_id 'C1')" in res.stderr and "not closed" in res.stderr
    assert "feature 2 (grid_id 'C3')" in res.stderr and "unknown kind" in res.stderr
    assert not out.exists()


def test_skip_invalid_plans_the_rest_and_lists_the_skipped(tmp_path):
    """--skip-invalid: exit 0, the skipped feature is listed and left out of the plan."""
    data = small_grid()
    data["features"][0]["geometry"]["coordinates"][0].pop()
    out = tmp_path / "out"
    res = run_patrol("plan", "--grids", write_grid(tmp_path, data), "--out", out, "--drones", 2,
                     "--skip-invalid", "--time-cap-s", 0.05, "--horizon-h", 1, "--no-png")
    assert res.returncode == 0, res.stderr
    assert "skipped feature 0 (grid_id 'C1')" in res.stderr
    summary = json.loads((out / "plan.json").read_text())
    assert "C1" not in summary["cells"] and "C2" in summary["cells"]
    assert summary["totals"]["skipped_features"]


def test_missing_grid_file_and_bad_option_exit_2(tmp_path):
    """A missing file, or an overlap out of range, is invalid input: exit 2, nothing written."""
    out = tmp_path / "out"
    res = run_patrol("plan", "--grids", tmp_path / "nope.geojson", "--out", out)
    assert res.returncode == 2 and "cannot read" in res.stderr
    res = run_patrol("plan", "--grids", write_grid(tmp_path, small_grid()), "--out", out, "--side-overlap", 1.5)
    assert res.returncode == 2 and "side_overlap" in res.stderr
    assert not out.exists()


def test_replanning_into_the_same_directory_leaves_no_stale_sorties(tmp_path):
    """A second, smaller plan into the same --out replaces the drone folders of the first."""
    grid = write_grid(tmp_path, small_grid())
    out = tmp_path / "out"
    common = ["--grids", grid, "--out", out, "--time-cap-s", 0.05, "--horizon-h", 1, "--no-png"]
    assert run_patrol("plan", *common, "--drones", 3).returncode == 0
    (out / "notes.txt").write_text("operator notes")
    assert run_patrol("plan", *common, "--drones", 1).returncode == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["drone01"]
    assert (out / "notes.txt").exists()


def test_demo_plan_plans_the_bundled_sample(tmp_path, capsys):
    """What `make demo` runs: the Danyang sample planned with 12 drones, the map and summary written."""
    assert demo_plan(str(tmp_path / "demo")) == 0
    printed = capsys.readouterr().out
    assert "plan.png" in printed and "972 cells" in printed
    assert (tmp_path / "demo" / "plan.png").exists()
    assert len(json.loads((tmp_path / "demo" / "plan.json").read_text())["drones"]) == 12


def test_yaml_config_is_applied_and_unknown_keys_rejected(tmp_path):
    """--config: a YAML section changes the plan; a misspelt key is exit 2 naming the key."""
    grid = write_grid(tmp_path, small_grid())
    good = tmp_path / "good.yaml"
    good.write_text("coverage:\n  altitude_m: 40\nsolver:\n  time_cap_s: 0.05\n")
    out = tmp_path / "out"
    res = run_patrol("plan", "--grids", grid, "--out", out, "--config", good, "--drones", 1, "--horizon-h", 1, "--no-png")
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "plan.json").read_text())
    assert summary["inputs"]["altitude_m"] == 40 and summary["inputs"]["drones"] == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("fleet:\n  endurance_minutes: 30\n")
    res = run_patrol("plan", "--grids", grid, "--out", tmp_path / "out2", "--config", bad)
    assert res.returncode == 2 and "endurance_minutes" in res.stderr
    assert not (tmp_path / "out2").exists()


def test_failed_write_keeps_the_previous_plan(tmp_path, monkeypatch):
    """If drawing the map fails half way, the plan already in --out is left as it was."""
    import pytest

    from mission_planner import load_grids, plan_patrol
    from mission_planner import output

    from .conftest import fast_config

    plan = plan_patrol(load_grids(small_grid()), fast_config(drones=2).with_overrides(schedule={"horizon_h": 1}))
    out = tmp_path / "out"
    output.write_plan_dir(plan, out, png=False)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    def broken_png(*_args, **_kw):
        raise RuntimeError("disk full")

    monkeypatch.setattr(output, "render_png", broken_png)
    with pytest.raises(RuntimeError):
        output.write_plan_dir(plan, out)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.partial")]
