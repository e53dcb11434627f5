"""Detectors, one job each: fire/smoke by colour + flicker, motion blobs sized into people and
vehicles, crowds, stopped vehicles (seen braking, or standing on a mapped lane), zone intrusions,
and an optional ONNX model."""
from .base import Blob, Sighting
from .crowd import CrowdDetector
from .fire_smoke import FireDetector
from .intrusion import IntrusionDetector
from .lane_vehicle import GroundPersistence, LaneVehicleDetector
from .motion import MotionDetector
from .stopped_vehicle import StoppedVehicleDetector

__all__ = ["Blob", "CrowdDetector", "FireDetector", "GroundPersistence", "IntrusionDetector", "LaneVehicleDetector",
           "MotionDetector", "Sighting", "StoppedVehicleDetector"]
