"""The simulated pack: SITL's 3300 mAh by default, a patrol pack on request."""
from common.airframe import AirframeProfile
from mission_planner.config import PlannerConfig
from sim.vehicles import SimulatedFleet


def hover_minutes_until_empty(vehicle) -> float:
    battery = vehicle.battery
    minutes = 0.0
    while battery.remaining_frac > 0 and minutes < 120:
        battery.step(1.0, armed=True, airborne=True, airspeed_m_s=10.0, climb_m_s=0.0)
        minutes += 1 / 60
    return minutes


def test_default_pack_is_sitls_and_lasts_minutes():
    """Like SITL: BATT_CAPACITY 3300 and about six and a half minutes of flight."""
    vehicle = SimulatedFleet(count=1)[0]
    assert vehicle.params.get("BATT_CAPACITY") == 3300
    assert 5.5 < hover_minutes_until_empty(vehicle) < 7.5


def test_the_profiles_pack_lasts_the_planners_endurance():
    """The airframe profile's pack (the `patrol sim vehicles` default), drawn as the profile says,
    lasts the planner's endurance at cruise: one figure for planner and simulator."""
    profile = AirframeProfile()
    vehicle = SimulatedFleet(count=1, battery_mah=profile.pack_mah, airframe=profile)[0]
    assert vehicle.params.get("BATT_CAPACITY") == 13000
    assert abs(hover_minutes_until_empty(vehicle) - PlannerConfig().fleet.endurance_min) < 0.1


def test_the_simulator_draws_what_the_profile_says():
    """A hungrier airframe drains the same pack sooner."""
    hungry = AirframeProfile(cruise_current_a=62.4, hover_current_a=58.0)
    vehicle = SimulatedFleet(count=1, battery_mah=13000, airframe=hungry)[0]
    assert abs(hover_minutes_until_empty(vehicle) - hungry.endurance_min) < 0.1
