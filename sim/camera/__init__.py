"""Synthetic drone camera: procedural ground, scripted actors, ground truth next to the frames.

    from sim.camera import SyntheticCamera, Scene, HoverFlight, CarActor, Mover
    scene = Scene(actors=[CarActor(Mover(((-50, 0), (50, 0)), 10.0), name="car-1")])
    camera = SyntheticCamera(scene, CameraModel(640, 360, 82.0))
    frame = camera.render(pose, t_s)           # BGR np.ndarray
    truth = camera.visible_truth(pose, t_s)    # [TruthItem(kind, lat, lon, since_s, first_visible_s, name)]
"""
from .actors import CarActor, CrowdActor, FireActor, Mover, PersonActor
from .camera import SyntheticCamera, TruthItem, camera_rotation
from .scene import HoverFlight, LaneFlight, PatrolFlight, Scene

__all__ = ["CarActor", "CrowdActor", "FireActor", "HoverFlight", "LaneFlight", "Mover", "PatrolFlight", "PersonActor",
           "Scene", "SyntheticCamera", "TruthItem", "camera_rotation"]
