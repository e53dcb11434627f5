"""The simulated pack: SITL's 3300 mAh by default, a patrol pack on request."""
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


def test_patrol_pack_covers_the_planners_endurance():
    """A 13500 mAh pack (the `patrol sim vehicles` default) outlasts the planner's default endurance."""
    vehicle = SimulatedFleet(count=1, battery_mah=13500)[0]
    assert vehicle.params.get("BATT_CAPACITY") == 13500
    assert hover_minutes_until_empty(vehicle) >= PlannerConfig().fleet.endurance_min
