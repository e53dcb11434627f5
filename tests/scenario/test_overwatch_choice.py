"""Which drone holds overwatch: the closest one flying its patrol with energy to spare."""
from types import SimpleNamespace

from common.geo import offset
from common.values import Pose
from runloop.drones import DroneOps, DroneRecord
from runloop.scenario import parse_scenario

INCIDENT = (32.0, 119.58)


def get_drone(drone_id, north_m, *, mode="AUTO", battery=80.0, seq=5, overwatch=None, link_ok=True):
    """A drone north_m north of the incident, at 60 m, in `mode`."""
    lat, lon = offset(*INCIDENT, north_m, 0.0)
    state = SimpleNamespace(armed=True, link_ok=link_ok, pose=Pose(0, lat, lon, 60.0, 70.0), mode=mode,
                            battery_remaining_pct=battery, mission_seq=seq)
    return DroneRecord(drone_id, SimpleNamespace(state=state), "DOCK", overwatch_incident=overwatch,
                       watching={overwatch: INCIDENT} if overwatch else {})


def get_ops(*drones) -> DroneOps:
    ops = DroneOps.__new__(DroneOps)
    ops.scenario = parse_scenario({"name": "t", "overwatch": {"min_battery_pct": 35}})
    ops.drones = {d.drone_id: d for d in drones}
    return ops


def choose(*drones) -> str | None:
    rec = get_ops(*drones).choose_overwatch_drone(*INCIDENT)
    return rec.drone_id if rec else None


def test_closest_patrolling_drone_is_chosen():
    """Of two drones in AUTO, the nearer one."""
    assert choose(get_drone("far", 400), get_drone("near", 100)) == "near"


def test_drones_without_energy_to_spare_are_passed_over():
    """Low battery, RTL, take-off (GUIDED, item < 2), lost link or already on overwatch: not chosen."""
    assert choose(get_drone("low", 50, battery=20), get_drone("ok", 600)) == "ok"
    assert choose(get_drone("rtl", 50, mode="RTL"), get_drone("takeoff", 60, mode="GUIDED", seq=1),
                  get_drone("lost", 70, link_ok=False), get_drone("busy", 80, overwatch="inc-1")) is None


class RetaskRefusedOutsideFence:
    """A vehicle's retask whose reposition is refused (the point is outside its sortie's fence)
    after it already switched to GUIDED, as ArduCopter does; or accepted."""

    def __init__(self, state, refuse: bool):
        self.state, self.refuse, self.active = state, refuse, None

    async def overwatch(self, lat, lon, **kwargs):
        self.state.mode, self.active = "GUIDED", (lat, lon)
        if self.refuse:
            raise RuntimeError("reposition rejected: FAILED")
        return self.active

    async def resume_patrol(self):
        self.state.mode, self.active = "AUTO", None
        return self.state.mission_seq


async def test_a_drone_that_refuses_the_point_goes_back_to_patrol_and_the_next_one_goes():
    """The nearest drone cannot go (its fence): it resumes its patrol at once instead of hovering
    in GUIDED, and the next closest drone is sent; both recorded."""
    import asyncio

    from common.values import Incident, IncidentKind

    near, far = get_drone("near", 100), get_drone("far", 400)
    near.vehicle.retask = RetaskRefusedOutsideFence(near.vehicle.state, refuse=True)
    far.vehicle.retask = RetaskRefusedOutsideFence(far.vehicle.state, refuse=False)
    ops = get_ops(near, far)
    events = []
    ops.store = SimpleNamespace(add=lambda *event, **data: events.append(event[1:3]))
    ops.clock, ops.chooser, ops._lock = (lambda: 61.0), None, asyncio.Lock()
    await ops.overwatch(Incident("scenario.alarm-1", IncidentKind.REPORTED, 1.0, 60.0, 60.0, *INCIDENT))
    assert events == [("overwatch_failed", "near"), ("patrol_resumed", "near"), ("overwatch_start", "far")]
    assert near.vehicle.state.mode == "AUTO" and near.overwatch_incident is None
    assert far.overwatch_incident == "scenario.alarm-1" and far.vehicle.state.mode == "GUIDED"
