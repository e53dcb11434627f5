"""vision: incidents in drone video, placed on the map.

    from vision import IncidentPipeline, VisionConfig
    pipe = IncidentPipeline(VisionConfig(), camera=CameraModel(1280, 720, 82), drone_id="d1")
    events = pipe.process(frame_bgr, t_s, pose_or_None)   # list[common.values.IncidentEvent]
"""
from .config import VisionConfig, load_config
from .errors import VisionError
from .incidents import IncidentRegistry
from .pipeline import IncidentPipeline

__all__ = ["IncidentPipeline", "IncidentRegistry", "VisionConfig", "VisionError", "load_config"]
