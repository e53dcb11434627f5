"""Energy before take-off and staying with the vehicle, as an operator meets them with `patrol fly`
against the built-in simulator (the CLI in its own process, the simulator in the test's loop)."""
from __future__ import annotations

from pathlib import Path

import pytest

from common.airframe import AirframeProfile
from flight.errors import EnergyShortfall
from flight.safety import ConsumptionModel, sortie_flight_s
from flight.sortie import fly_sortie
from flight.vehicle import VehicleState
from mission_planner import read_plan, write_plan
from tests.flight.procedures import connect, get_sortie
from tests.flight.test_cli import run_patrol

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def planned_sortie(tmp_path_factory) -> Path:
    """The sample grid's cell DY-C0100 planned for one drone: a ~5 min sortie at 60 m."""
    from patrol import main

    out = tmp_path_factory.mktemp("plan")
    assert main(["plan", "--grids", str(ROOT / "mission_planner/samples/danyang_grids.geojson"), "--out", str(out),
                 "--drones", "1", "--cells", "DY-C0100", "--no-png", "--horizon-h", "0.5"]) == 0
    return out / "drone01" / "sortie01.plan"


async def test_patrol_fly_refuses_before_arming_a_sortie_the_stock_pack_cannot_hold(sim_fleet, planned_sortie):
    """A planner sortie on a vehicle with SITL's stock pack (BATT_CAPACITY 3300): `patrol fly`
    exits 1 before arming, giving the figures; nothing is armed and nothing uploaded.
    (The same sortie on the profile's pack is flown to disarm: test_cli.)"""
    mission = read_plan(planned_sortie)
    fleet = await sim_fleet(count=1, speedup=20.0, home=(mission.items[0].lat, mission.items[0].lon, 10.0))
    sv = fleet[0]
    assert sv.params.get("BATT_CAPACITY") == 3300
    code, out, err = await run_patrol("fly", "--connect", sv.url, "--plan", str(planned_sortie), "--speedup", "20",
                                      "--drone-id", "drone01")
    assert code == 1, (out, err)
    assert "does not fit the battery: needs \u2248" in err and "mAh usable (BATT_CAPACITY 3300 mAh" in err, err
    assert "not armed" in err
    needed = int(err.split("needs \u2248")[1].split(" mAh")[0])
    usable = int(err.split("vehicle has ")[1].split(" mAh usable")[0])
    assert usable == 2640 and 2500 < needed < 3000  # 80 % of a full 3300 pack; the sortie ~5 min at ~31 A
    assert not sv.truth.armed and "uploading" not in out


async def test_the_check_counts_what_is_left_not_the_pack(sim_fleet):
    """A short sortie on a stock pack drained to 30 %: 990 mAh left, 660 of them the reserve.
    Verifying only says it does not fit; flying it is refused before arming."""
    fleet = await sim_fleet(count=1, speedup=20.0)
    sv = fleet[0]
    sortie = get_sortie((sv.truth.lat, sv.truth.lon), [(400, 0), (400, 400)])
    sv.faults.drain_battery_to(30.0)
    said: list[str] = []
    v = await connect(sv.url, speedup=20.0)
    try:
        await fly_sortie(v, sortie, progress=said.append, verify_only=True)
        assert any("does NOT fit" in line and "990 mAh left" in line for line in said), said
        with pytest.raises(EnergyShortfall, match="vehicle has 330 mAh usable") as refused:
            await fly_sortie(v, sortie, progress=said.append)
        assert not refused.value.energy.fits and refused.value.energy.needed_mah > 330
        assert not sv.truth.armed
    finally:
        await v.close()


async def test_patrol_fly_stays_with_the_vehicle_until_it_has_landed(sim_fleet, tmp_path):
    """A sortie cut short (here: past its --timeout) is sent home, and `patrol fly` keeps watching,
    printing what the vehicle does, until it has landed and disarmed; then exit 1 with the reason.
    The operator never loses telemetry while the drone is still in the air."""
    fleet = await sim_fleet(count=1, speedup=40.0, battery_mah=13000)
    sv = fleet[0]
    home = (sv.truth.lat, sv.truth.lon)
    plan = write_plan(tmp_path / "long.plan", get_sortie(home, [(300, 0), (300, 300)]))
    code, out, err = await run_patrol("fly", "--connect", sv.url, "--plan", str(plan), "--speedup", "40",
                                      "--timeout", "1", timeout_s=60)
    assert code == 1 and "took longer than" in err, (out, err)
    assert "watching until it has landed" in out
    assert sv.truth.landed and not sv.truth.armed  # already down when patrol fly let go


def test_consumption_is_refined_by_what_the_vehicle_reports():
    """Until the vehicle has flown a while, the profile's figures; then its own current, from
    BATTERY_STATUS current_consumed over its own clock (a hungrier drone needs more)."""
    profile = AirframeProfile()
    model = ConsumptionModel(profile, learn_s=20.0)
    assert model.mah_for(600, 0) == pytest.approx(profile.mah_for(600, 0))
    s = VehicleState(airborne=True, battery_consumed_mah=0.0)
    for t in range(0, 31):  # 30 s at 62.4 A (twice the profile's cruise current), 1 Hz
        s.time_boot_s, s.battery_consumed_mah = float(t), 62.4 * t / 3.6
        model.observe(s)
    assert model.measured_current_a == pytest.approx(62.4)
    assert model.mah_for(600, 0) == pytest.approx(2 * profile.mah_for(600, 0))
    s.airborne = False  # landed: a later flight keeps what was learned
    model.observe(s)
    assert model.scale == pytest.approx(2.0)


def test_sortie_time_counts_legs_turns_climbs_and_the_landing():
    """Longer legs, higher altitudes and slower airframes all take longer."""
    home = (32.0, 119.58)
    base = sortie_flight_s(get_sortie(home, [(500, 0)]), home, AirframeProfile())
    assert sum(sortie_flight_s(get_sortie(home, [(900, 0)]), home, AirframeProfile())) > sum(base)
    assert sum(sortie_flight_s(get_sortie(home, [(500, 0)], alt_m=60), home, AirframeProfile())) > sum(base)
    slow = AirframeProfile(cruise_speed_m_s=5.0)
    assert sortie_flight_s(get_sortie(home, [(500, 0)]), home, slow)[0] > base[0]


def test_one_profile_in_the_planner_config_and_the_scenario_file():
    """The sortie budget follows from the profile (half the pack: half the sortie); a misspelt
    profile field is refused by name in the planner config and in the scenario file alike."""
    from mission_planner import PlannerConfig
    from mission_planner.errors import PlanningError
    from runloop.errors import RunError
    from runloop.scenario import parse_scenario

    assert PlannerConfig().fleet.sortie_budget_s == 1200.0  # 25 min at 10 m/s, 20 % reserve
    half = PlannerConfig.from_mapping({"fleet": {"airframe": {"pack_mah": 6500}}})
    assert half.fleet.sortie_budget_s == 600.0 and half.fleet.cruise_speed_m_s == 10.0
    with pytest.raises(PlanningError, match="pack_mAh"):
        PlannerConfig.from_mapping({"fleet": {"airframe": {"pack_mAh": 6500}}})
    with pytest.raises(RunError, match="pack_mAh"):
        parse_scenario({"name": "x", "fleet": {"airframe": {"pack_mAh": 6500}}})
    assert parse_scenario({"name": "x"}).fleet.airframe == AirframeProfile()
