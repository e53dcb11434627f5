"""Typed vision configuration: one pydantic model per section, unknown keys rejected by name.

Thresholds are documented where they live; defaults are tuned on the synthetic camera at
40-80 m AGL and are conservative about false alerts (a false dispatch costs a rider's time).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.values import CameraModel

from .errors import VisionError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProcessingConfig(Section):
    """Working resolutions: full-res pixels are only touched inside small ROIs."""

    work_width_px: int = Field(640, ge=160, le=1920, title="motion detection width")
    ego_width_px: int = Field(320, ge=160, le=1920, title="ego-motion estimation width")
    colour_width_px: int = Field(320, ge=160, le=1920, title="fire colour mask width")


class CameraConfig(Section):
    """The payload camera; the gimbal is stabilised (roll/pitch of the body do not tilt it)."""

    width_px: int = Field(1920, gt=0)
    height_px: int = Field(1080, gt=0)
    hfov_deg: float = Field(82.0, gt=5, lt=170)
    gimbal_pitch_deg: float = Field(-90.0, ge=-90, le=-20, title="-90 is nadir")
    gimbal_yaw_offset_deg: float = 0.0

    def model(self) -> CameraModel:
        return CameraModel(self.width_px, self.height_px, self.hfov_deg)


class EgoMotionConfig(Section):
    max_features: int = Field(200, ge=20)
    min_inliers: int = Field(15, ge=6, title="fewer RANSAC inliers = frame not registered")
    ransac_px: float = Field(1.5, gt=0)


class MotionConfig(Section):
    """Three-frame differencing after ego-motion compensation.

    An object is moving where the current frame differs from BOTH the frame `gap_s` ago and the
    one 2*gap_s ago (warped into the current view); that keeps the object's present position and
    drops the ghosts of where it was. 0.4 s lets a walking person clear their own width.
    """

    gap_s: float = Field(0.4, gt=0.02, le=2.0)
    diff_threshold: int = Field(28, ge=5, le=200, title="grey-level difference counted as change")
    person_max_len_m: float = Field(1.5, gt=0)
    person_area_m2: tuple[float, float] = (0.06, 1.2)
    vehicle_len_m: tuple[float, float] = (1.6, 7.5)
    vehicle_area_m2: tuple[float, float] = (1.4, 16.0)


class TrackerConfig(Section):
    gate_m: float = Field(3.0, gt=0, title="max jump between a track and its next detection")
    confirm_hits: int = Field(4, ge=1)
    confirm_travel_m: float = Field(0.8, ge=0, title="a track must travel this far to be real")
    verify_score: float = Field(0.6, gt=0, le=1, title="template match to keep a stopped track")
    verify_every_frames: int = Field(3, ge=1)
    max_misses: int = Field(4, ge=1)
    tentative_timeout_s: float = Field(1.0, gt=0)


class FireConfig(Section):
    """Flame pixels: bright saturated orange-yellow; a flame region must also flicker and stay put."""

    hue_range: tuple[int, int] = (6, 35)  # OpenCV hue 0-180; red roofs sit below 6
    min_saturation: int = Field(110, ge=0, le=255)
    min_value: int = Field(205, ge=0, le=255)
    min_area_px: int = Field(5, ge=1, title="at colour_width_px resolution")
    window_frames: int = Field(4, ge=3, title="frames of evidence before a flame is believed")
    min_flicker: float = Field(0.22, ge=0, title="share of flame pixels changing frame to frame")
    min_colour_swing: float = Field(6.0, ge=0, title="mean frame-to-frame change of the flame's green level")
    max_drift_m: float = Field(3.0, gt=0, title="a flame does not drive away")
    colour_alone: bool = Field(False, title="alarm on colour + flicker without the smoke/fire model: only for the "
                               "synthetic camera (on real video sunlit leaves, lamps and taxis flicker too)")


class CrowdConfig(Section):
    min_people: int = Field(5, ge=2)
    radius_m: float = Field(5.0, gt=0, title="people within this of the group centre")
    person_area_m2: float = Field(0.8, gt=0, title="motion-blob area of one person (with shadow) from above")
    min_spacing_m: float = Field(0.7, ge=0, title="tracks closer than this are one person")
    min_standing: int = Field(0, ge=0, title="members that must have stopped (standing people are hard to keep tracked without a DNN)")
    standing_speed_m_s: float = Field(0.6, gt=0, title="speed over 2 s below which a member has stopped")
    hold_s: float = Field(0.4, ge=0, title="the cluster must last this long")
    max_group_speed_m_s: float = Field(2.5, gt=0, title="a blob faster than this is not a walking group")


class StoppedVehicleConfig(Section):
    stationary_s: float = Field(20.0, gt=0, title="still this long in traffic = stopped vehicle")
    still_radius_m: float = Field(2.5, gt=0)
    min_prior_speed_m_s: float = Field(3.0, ge=0, title="it was moving with traffic before")
    max_speed_at_halt_m_s: float = Field(6.0, gt=0, title="speed at the last motion sighting of a car that halts")
    road_zones: list[list[tuple[float, float]]] = Field(default_factory=list, title="(lat, lon) polygons; empty = anywhere")
    # Found by appearance on the lanes (needs road_zones; see detectors/lane_vehicle.py).
    by_appearance: bool = Field(True, title="also find vehicles standing on road_zones without seeing them move")
    lane_margin_m: float = Field(0.4, ge=0, title="lane polygons shrunk by this (kerb, parked cars' edges)")
    lane_max_tint: int = Field(30, ge=0, le=255, title="lanes whose median colour is more tinted are not tarmac: skipped")
    lane_contrast: int = Field(30, ge=5, le=200, title="colour difference from the lane's tarmac")
    lane_open_m: float = Field(0.9, gt=0, title="opening removes markings and people narrower than this")
    lane_vehicle_len_m: tuple[float, float] = (3.0, 8.0)
    lane_vehicle_width_m: tuple[float, float] = (1.3, 3.0)
    lane_every_s: float = Field(0.19, ge=0, title="look at the lanes this often (a standing car needs no 30 looks a second)")
    lane_min_visit_s: float = Field(2.0, ge=0, title="seen in one place without a break this long at least once")
    lane_drop_after: int = Field(3, ge=1, title="looks at an empty place before a candidate is forgotten")
    lane_forget_s: float = Field(900.0, gt=0, title="a candidate unseen this long is forgotten (passes further apart are unrelated)")


class IntrusionConfig(Section):
    zones: list[list[tuple[float, float]]] = Field(default_factory=list, title="restricted (lat, lon) polygons")
    margin_m: float = Field(0.5, ge=0, title="alarm this close outside a zone (geolocation error)")


class GeolocationConfig(Section):
    ground_alt_msl_m: float | None = Field(None, title="None = flat ground at the take-off altitude")
    gps_error_m: float = Field(2.0, ge=0)
    attitude_error_deg: float = Field(1.0, ge=0)
    alt_error_m: float = Field(1.0, ge=0)
    telemetry_offset_s: float = Field(0.0, title="added to frame time before looking up the pose")
    max_telemetry_gap_s: float = Field(1.0, gt=0)
    assumed_alt_m: float | None = Field(None, gt=0, title="altitude for sizing objects without telemetry (patrol watch "
                                        "--altitude-m); None = scale unknown: size-based classes are off")


class IncidentConfig(Section):
    dedup_radius_m: dict[str, float] = Field(default_factory=lambda: {
        "fire": 15.0, "crowd": 20.0, "stopped_vehicle": 8.0, "intrusion": 5.0})
    end_after_s: float = Field(20.0, gt=0, title="unseen this long = ended")
    cooldown_s: float = Field(600.0, ge=0, title="same kind and place within this re-opens, not re-alerts")
    update_every_s: float = Field(5.0, gt=0)


class SnapshotConfig(Section):
    max_bytes: int = Field(30_000, ge=2_000)
    width_px: int = Field(640, ge=160)
    min_interval_s: float = Field(1.0, ge=0)


class ModelsConfig(Section):
    """Pretrained ONNX detectors (vision/models.py): looked up in `dir`, checked by sha256."""

    dir: Path | None = Field(None, title="models directory; None = env PATROL_MODELS; neither = no models")
    backend: Literal["auto", "onnxruntime", "cv2"] = Field("auto", title="auto = onnxruntime when installed")
    threads: int = Field(1, ge=1, le=16, title="threads per model run")
    people_vehicles: str = Field("yolox_nano_416.onnx", title="COCO person/vehicle model file; '' = none")
    fire_smoke: str = Field("auto", title="smoke/fire model file; auto = the int8 one with onnxruntime, else fp32; "
                                          "'' = none")


class FireModelConfig(Section):
    """Fire/smoke from the learned model, held over several model frames (one frame can be wrong)."""

    every_s: float = Field(0.5, gt=0, title="run the smoke/fire model this often")
    window: int = Field(4, ge=1, title="model frames looked back over")
    min_hits: int = Field(3, ge=1, title="of them with smoke (or supported fire) before an alarm")
    smoke_score: float = Field(0.5, gt=0, le=1, title="smoke alone at this score is a hit (clean on calm footage)")
    fire_score: float = Field(0.6, gt=0, le=1, title="the fire class, only with support (sunlit forest scores 0.7 alone)")
    support_smoke_score: float = Field(0.3, gt=0, le=1, title="smoke this strong in the frame supports a fire box")


class PeopleModelConfig(Section):
    """People (crowds) from the COCO model, scale-free: distances in person-box sizes."""

    every_s: float = Field(0.33, gt=0, title="run the person/vehicle model this often")
    person_score: float = Field(0.4, gt=0, le=1)
    vehicle_score: float = Field(0.4, gt=0, le=1, title="a person riding/inside a vehicle box is not a pedestrian")
    tiles: int = Field(1, ge=1, le=3, title="n x n tiles of the frame per model run (small people from high up)")
    standing_window_s: float = Field(2.0, gt=0, title="a person is standing when, this long ago, their track was ...")
    standing_max_move: float = Field(0.35, gt=0, title="... within this many box sizes of where it is now")
    crowd_radius_sizes: float = Field(4.0, gt=0, title="members within this many person-box sizes of the centre")
    crowd_hold_s: float = Field(2.0, ge=0, title="standing people held this long before a crowd is reported")


class VisionConfig(Section):
    processing: ProcessingConfig = ProcessingConfig()
    camera: CameraConfig = CameraConfig()
    ego_motion: EgoMotionConfig = EgoMotionConfig()
    motion: MotionConfig = MotionConfig()
    tracker: TrackerConfig = TrackerConfig()
    fire: FireConfig = FireConfig()
    crowd: CrowdConfig = CrowdConfig()
    stopped_vehicle: StoppedVehicleConfig = StoppedVehicleConfig()
    intrusion: IntrusionConfig = IntrusionConfig()
    geolocation: GeolocationConfig = GeolocationConfig()
    incidents: IncidentConfig = IncidentConfig()
    snapshot: SnapshotConfig = SnapshotConfig()
    models: ModelsConfig = ModelsConfig()
    fire_model: FireModelConfig = FireModelConfig()
    people_model: PeopleModelConfig = PeopleModelConfig()

    @model_validator(mode="after")
    def _resolutions(self) -> "VisionConfig":
        p = self.processing
        if p.ego_width_px > p.work_width_px or p.colour_width_px > p.work_width_px:
            raise ValueError("processing: ego_width_px and colour_width_px must not exceed work_width_px")
        return self

    def for_synthetic_camera(self) -> "VisionConfig":
        """The classical detectors trusted on their own, as the synthetic camera (sim/camera) needs:
        its flames are drawn from the very colours the colour/flicker detector looks for."""
        return self.model_copy(update={"fire": self.fire.model_copy(update={"colour_alone": True})})


def load_config(path: str | Path) -> VisionConfig:
    """A VisionConfig from YAML; a missing file or an unknown key is a VisionError naming it."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise VisionError(f"cannot read vision config {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise VisionError(f"vision config {path} is not valid YAML: {exc}") from exc
    if isinstance(data, dict) and "vision" in data and len(data) == 1:
        data = data["vision"]
    try:
        return VisionConfig.model_validate(data)
    except ValidationError as exc:
        raise VisionError(f"vision config {path}: {exc}") from exc


def load_camera(path: str | Path) -> CameraConfig:
    """A CameraConfig from YAML/JSON (`width_px`, `height_px`, `hfov_deg`, `gimbal_pitch_deg`...)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return CameraConfig.model_validate(data.get("camera", data) if isinstance(data, dict) else data)
    except OSError as exc:
        raise VisionError(f"cannot read camera file {path}: {exc.strerror}") from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise VisionError(f"camera file {path}: {exc}") from exc
