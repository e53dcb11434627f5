"""The scenario file: bundled scenarios load, bad ones are refused naming the key."""
import pytest

from runloop import RunError
from runloop.scenario import BUNDLED_DIR, load_scenario, parse_scenario


def get_minimal(**extra) -> dict:
    """A small valid scenario mapping with `extra` keys merged in."""
    return {"name": "t", "incidents": [{"kind": "fire", "lat": 32.0, "lon": 119.58, "at_s": 10}], **extra}


@pytest.mark.parametrize("path", sorted(BUNDLED_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_bundled_scenarios_load_and_find_their_grids(path):
    """Every bundled scenario validates and its grids file resolves."""
    scenario = load_scenario(path.stem)
    assert scenario.grids_path().exists()
    assert scenario.incidents


def test_demo_scenario_is_what_the_issue_asks_for():
    """danyang-demo: 3 drones, 4 riders, a fire, a crowd and a stopped vehicle."""
    s = load_scenario("danyang-demo")
    assert (s.fleet.drones, s.riders.count) == (3, 4)
    assert sorted(i.kind.value for i in s.incidents) == ["crowd", "fire", "stopped_vehicle"]


def test_unknown_key_is_refused_by_name():
    """A typo in a section is reported with its path, not silently ignored."""
    with pytest.raises(RunError, match=r"fleet\.dronez: unknown key"):
        parse_scenario(get_minimal(fleet={"dronez": 3}))


def test_every_problem_is_listed_at_once():
    """Two bad fields give two lines."""
    with pytest.raises(RunError) as err:
        parse_scenario(get_minimal(speedup=0, riders={"count": -1}))
    assert "speedup" in str(err.value) and "riders.count" in str(err.value)


def test_fault_must_name_exactly_one_thing():
    """A fault with two kinds (or none) is refused."""
    with pytest.raises(RunError, match="exactly one"):
        parse_scenario(get_minimal(faults=[{"at_s": 5, "broker_restart": True,
                                            "link_cut": {"drone": 1, "seconds": 3}}]))


def test_fault_naming_a_missing_drone_is_refused():
    """link_cut on drone 4 of a 3-drone fleet."""
    with pytest.raises(RunError, match="drone 4"):
        parse_scenario(get_minimal(faults=[{"at_s": 5, "link_cut": {"drone": 4, "seconds": 3}}]))


def test_bad_vision_section_is_refused():
    """Vision overrides are checked against vision's own config."""
    with pytest.raises(RunError, match="vision"):
        parse_scenario(get_minimal(vision={"stopped_vehicle": {"stationary_seconds": 3}}))


def test_unknown_scenario_name_lists_the_bundled_ones():
    """A name that is no file and no bundled scenario says which exist."""
    with pytest.raises(RunError, match="danyang-demo"):
        load_scenario("no-such-scenario")


def test_patrol_run_refuses_a_bad_scenario_with_exit_2(tmp_path, capsys):
    """`patrol run` on a scenario with an unknown key exits 2 naming it, and starts nothing."""
    import patrol

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nfleet: {drones: 2, batteries: 3}\n")
    assert patrol.main(["run", "--scenario", str(bad), "--out", str(tmp_path / "run"), "--no-live"]) == 2
    assert "fleet.batteries: unknown key" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_patrol_run_reports_cells_out_of_reach_with_exit_2(tmp_path, capsys):
    """A fleet whose battery cannot reach the cells: the planner's reason, exit 2, no run started."""
    import patrol

    sc = tmp_path / "far.yaml"
    sc.write_text("name: far\ncells: [DY-C0266]\nfleet: {drones: 1, dock: DOCK-SW, airframe: {pack_mah: 1040}}\n")
    assert patrol.main(["run", "--scenario", str(sc), "--out", str(tmp_path / "run"), "--no-live"]) == 2
    assert "cannot plan the patrol" in capsys.readouterr().err


ZONE = [[32.0089, 119.5958], [32.0089, 119.5962], [32.0086, 119.5962], [32.0086, 119.5958]]


def get_with_zone(polygon=ZONE, **incident) -> dict:
    """A scenario with one restricted zone `yard` and one intrusion (inside it unless moved)."""
    return get_minimal(restricted_zones=[{"name": "yard", "polygon": polygon}],
                       incidents=[{"kind": "intrusion", "lat": 32.00875, "lon": 119.5960, "at_s": 20, **incident}])


def test_restricted_zone_closed_or_open_is_one_polygon():
    """A ring given closed (first vertex repeated) or open gives the same four vertices."""
    open_ = parse_scenario(get_with_zone()).restricted_zones[0]
    closed = parse_scenario(get_with_zone(ZONE + [ZONE[0]])).restricted_zones[0]
    assert open_.polygon == closed.polygon and len(open_.polygon) == 4


@pytest.mark.parametrize("polygon, problem", [
    (ZONE[:2], "at least 3 distinct vertices"),
    (ZONE[:2] + [ZONE[0]], "at least 3 distinct vertices"),
    ([ZONE[0], ZONE[2], ZONE[1], ZONE[3]], "crosses itself"),
])
def test_bad_restricted_zone_is_refused_naming_it(polygon, problem):
    """Too few vertices or a bow-tie: the error names the zone and what is wrong."""
    with pytest.raises(RunError, match=f"restricted zone 'yard'.*{problem}"):
        parse_scenario(get_with_zone(polygon))


def test_intrusion_outside_every_zone_is_refused():
    """An intrusion must happen inside a restricted zone; one outside names its position."""
    with pytest.raises(RunError, match=r"intrusion at \(32.0, 119.58\) is inside no restricted zone"):
        parse_scenario(get_with_zone(lat=32.0, lon=119.58))
    with pytest.raises(RunError, match="names zone 'depot'; restricted_zones has yard"):
        parse_scenario(get_with_zone(zone="depot"))


def test_scripted_incidents_start_at_their_time_by_default():
    """A stopped car stands on its road from at_s (not when a drone comes near) and an intruder
    crosses into the zone at at_s; a crowd by default waits for a drone to watch it gather."""
    from runloop.world import World

    data = get_with_zone()
    data["incidents"] += [{"kind": "stopped_vehicle", "lat": 32.0075, "lon": 119.5945, "at_s": 200},
                          {"kind": "crowd", "lat": 32.0075, "lon": 119.5946, "at_s": 30}]
    world = World.build(parse_scenario(data))
    intrusion, car, crowd = world.incidents
    assert [i.trigger for i in world.incidents] == ["time", "time", "pass"]
    assert world.step(19.0, []) == []
    assert world.step(25.0, []) == [intrusion]  # nothing near, the crowd keeps waiting
    assert world.step(200.5, []) == [car]
    assert (intrusion.started_s, car.started_s) == (20.0, 200.0)
    assert car.actor.mover.halted_s() == pytest.approx(200.0)
    assert car.actor.position_en(200.0) == pytest.approx(car.place_en or car.scene.en(32.0075, 119.5945), abs=0.05)
    zone = [intrusion.scene.en(lat, lon) for lat, lon in ZONE]
    from shapely.geometry import Point, Polygon

    ring = Polygon(zone)
    assert not ring.contains(Point(intrusion.actor.position_en(19.0)))
    assert ring.contains(Point(intrusion.actor.position_en(21.0)))
    assert crowd.started_s is None
    assert world.restricted_zones() == [[tuple(v) for v in ZONE]]



def test_a_shift_section_is_checked_like_the_rest(tmp_path, capsys):
    """Shift settings with a wrong kind, a zero weight or an unknown key are refused by name;
    `--until` outside the allowed range too; nothing is started."""
    import patrol

    bad = tmp_path / "bad-shift.yaml"
    bad.write_text("name: bad-shift\nshift: {revisit_s: {school: 300}, weights: {special: 0}, "
                   "dock_service: {swap_min: 2}}\n")
    assert patrol.main(["run", "--scenario", str(bad), "--out", str(tmp_path / "run"), "--no-live"]) == 2
    err = capsys.readouterr().err
    assert "shift.revisit_s.school.[key]: Input should be 'special' or 'comprehensive'" in err
    assert "shift.weights: Value error, must be > 0: special" in err
    assert "shift.dock_service.swap_min: unknown key" in err
    assert patrol.main(["run", "--scenario", "danyang-shift", "--until", "0", "--out", str(tmp_path / "run"),
                        "--no-live"]) == 2
    assert "--until 0: must be between 0 and 172800" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_scenario_alarms_are_validated_and_numbered():
    """alarms: each call needs at_s, lat, lon; unknown keys, a call after the run's end and a
    scripted incident of kind `reported` (what alarms open) are refused, each named."""
    call = {"at_s": 60, "lat": 32.0133, "lon": 119.5952, "kind": "110-call", "text": "smoke"}
    scenario = parse_scenario(get_minimal(alarms=[call, {**call, "at_s": 10, "kind": "sensor"}]))
    assert scenario.alarm_ids() == ["alarm-1", "alarm-2"] and scenario.alarms[1].priority is None
    problems = {
        r"alarms\.0\.caller: unknown key": [{**call, "caller": "Mrs Li"}],
        r"alarms\.0\.lon: Field required": [{k: v for k, v in call.items() if k != "lon"}],
        r"alarms\.0\.kind: String should match pattern": [{**call, "kind": "110 call"}],
        r"alarm 1 at 9999.0 s comes after the run ends": [{**call, "at_s": 9999}],
    }
    for problem, alarms in problems.items():
        with pytest.raises(RunError, match=problem):
            parse_scenario(get_minimal(alarms=alarms))
    with pytest.raises(RunError, match="reported is what an alarm opens"):
        parse_scenario(get_minimal(incidents=[{"kind": "reported", "lat": 32.0, "lon": 119.6}]))
