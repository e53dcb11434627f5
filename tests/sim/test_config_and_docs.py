"""Typed fleet configuration and the simulator modules' documented examples."""
import doctest

import pytest
from pydantic import ValidationError

import sim.cli
import sim.vehicles.config
import sim.vehicles.params
from sim.vehicles import FleetConfig, SimulatedFleet


def test_module_examples_run():
    """The docstring examples in params, config and cli are true."""
    for mod in (sim.vehicles.params, sim.vehicles.config, sim.cli):
        failed, attempted = doctest.testmod(mod)
        assert attempted > 0 and failed == 0, mod.__name__


def test_fleet_from_config_applies_start_faults_and_rejects_unknown_keys_by_name():
    """A scenario's `vehicles:` section builds the fleet; a misspelt key is named in the error."""
    cfg = FleetConfig.model_validate({"count": 2, "param_style": "4.5", "home": {"lat": 31.99, "lon": 119.6},
                                      "faults": {"packet_loss_pct": 5, "wind_speed_m_s": 4, "wind_from_deg": 90,
                                                 "battery_pct": 60}})
    fleet = SimulatedFleet.from_config(cfg)
    assert len(fleet) == 2 and fleet[1].params.style == "4.5"
    assert fleet[0].truth.lat == pytest.approx(31.99)
    assert all(v.faults.packet_loss_pct == 5 and v.truth.battery_remaining_pct == 60 for v in fleet)
    assert fleet[1].params.get("SIM_WIND_SPD") == 4
    with pytest.raises(ValidationError, match="fast_strat"):
        FleetConfig.model_validate({"fast_strat": True})
    with pytest.raises(ValidationError, match="speedup"):
        FleetConfig.model_validate({"speedup": 0})
