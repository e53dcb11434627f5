"""Built-in ArduCopter-compatible vehicles: `SimulatedFleet` and its `SimulatedVehicle`s.

    async with SimulatedFleet(count=2, base_port=5760, speedup=5, fast_start=True) as fleet:
        fleet[0].url    # "tcp:127.0.0.1:5760" (vehicle i: base_port + 10*i, sysid i+1)
        fleet[0].truth  # ground truth for tests: lat, lon, alt_rel_m, mode, armed, ...
        fleet[0].faults.cut_link(10)
"""
from sim import SimError
from sim.vehicles.config import FaultConfig, FleetConfig, HomeConfig
from sim.vehicles.faults import VehicleFaults
from sim.vehicles.fleet import DEFAULT_HOME, SimulatedFleet
from sim.vehicles.vehicle import SimulatedVehicle, VehicleTruth

__all__ = ["SimulatedFleet", "FleetConfig", "FaultConfig", "HomeConfig", "SimulatedVehicle", "VehicleTruth", "VehicleFaults", "SimError",
           "DEFAULT_HOME"]
