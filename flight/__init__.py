"""Fleet flight control over MAVLink: an asyncio-native vehicle API over pymavlink.

    from flight import Vehicle, Fleet, FlightError
"""
from flight.config import FlightConfig
from flight.errors import FlightError
from flight.events import EventKind, VehicleEvent
from flight.fleet import Fleet
from flight.sortie import SortieReport, fly_sortie
from flight.vehicle import Vehicle

__all__ = ["EventKind", "Fleet", "FlightConfig", "FlightError", "SortieReport", "Vehicle", "VehicleEvent",
           "fly_sortie"]
