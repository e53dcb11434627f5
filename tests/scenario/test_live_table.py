"""The live terminal table shows drones, incidents and units as the run sees them."""
from types import SimpleNamespace

from common.values import Pose
from runloop.live import render_table


def get_drones():
    """One drone on overwatch in GUIDED, one that lost its link."""
    def rec(drone_id, mode, link_ok, overwatch):
        state = SimpleNamespace(pose=Pose(0, 32.0, 119.58, 60.0, 70.0), battery_remaining_pct=71.0, mode=mode,
                                link_ok=link_ok)
        return SimpleNamespace(drone_id=drone_id, vehicle=SimpleNamespace(state=state), current="sortie01", done=0,
                               total=2, overwatch_incident=overwatch)
    return SimpleNamespace(drones={"drone01": rec("drone01", "GUIDED", True, "inc-fire-0001"),
                                   "drone02": rec("drone02", "RTL", False, None)})


def test_table_lists_drones_incidents_and_units():
    """Mode (with ! for a lost link), battery, sortie progress, overwatch; incident status and unit; units."""
    recorder = SimpleNamespace(incidents={"inc-fire-0001": {"incident": {"kind": "fire"}, "status": "accepted",
                                                            "unit_id": "M02"}},
                               unit_positions={"M02": (32.001, 119.581, "busy")})
    world = SimpleNamespace(incidents=[SimpleNamespace(name="crowd-2", started_s=None)])
    text = render_table(123.4, get_drones(), recorder, world)
    lines = text.splitlines()
    assert "t=  123.4 s" in lines[0]
    assert any(l.startswith("drone01") and "GUIDED" in l and "71" in l and "0/2" in l and "inc-fire-0001" in l
               for l in lines)
    assert any(l.startswith("drone02") and "RTL!" in l for l in lines)
    assert any("inc-fire-0001" in l and "accepted" in l and "M02" in l for l in lines)
    assert any(l.startswith("M02") and "busy" in l for l in lines)
    assert "not started yet: crowd-2" in text
