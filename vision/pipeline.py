"""The per-drone pipeline: frame (+ pose) -> ego-motion -> detectors -> tracks -> incident events.

    pipe = IncidentPipeline(VisionConfig(), camera=CameraModel(1280, 720, 82), drone_id="d1",
                            cell_lookup=lambda lat, lon: "G-0042", restricted_zones=[[(lat, lon), ...]],
                            road_zones=[[(lat, lon), ...]])  # lanes: a car standing on one is found unseen moving
    events = pipe.process(frame_bgr, t_s, pose_or_None)   # list[IncidentEvent]

Work is done at reduced resolution (ego-motion ~320 px wide, motion ~640, colour ~320); the
full-resolution frame is only touched inside small ROIs (template checks) and for snapshots.
Without a pose the pipeline still runs: fire is found and boxed, objects are sized from an
assumed altitude, and incidents carry no lat/lon (intrusions need a pose and are skipped).
"""
from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

import cv2
import numpy as np
from shapely.geometry import Polygon

from common.geo import LocalFrame
from common.values import CameraModel, IncidentEvent, IncidentKind, IncidentState, Pose

from .config import VisionConfig
from .detectors import (CrowdDetector, FireDetector, IntrusionDetector, LaneVehicleDetector, MotionDetector,
                        Sighting, StoppedVehicleDetector)
from .detectors.learned import FireSmokeModel, PeopleModel
from .egomotion import EgoMotion
from .errors import ModelMissingError, VisionError
from .geolocate import Projector
from .incidents import IncidentRegistry, Observation, event
from .models import ModelStore
from .snapshot import annotate, encode_jpeg
from .tracker import Track, Tracker

log = logging.getLogger(__name__)

# Smoke drifts ~20 m downwind of a fire and its edges move like walkers: nothing moving within
# this of a fire seen in the last FIRE_MEMORY_S counts as people.
FIRE_EXCLUSION_M = 25.0
FIRE_MEMORY_S = 15.0

GridLookup = Callable[[float, float], "str | None"]


def _scale_h(h: np.ndarray | None, s: float) -> np.ndarray | None:
    """A homography between images at one resolution, re-expressed at `s` times that resolution."""
    if h is None:
        return None
    m = np.diag([s, s, 1.0])
    return m @ h @ np.diag([1 / s, 1 / s, 1.0])


def _shrunk(image: np.ndarray, width_px: int) -> np.ndarray:
    """`image` scaled down to `width_px` wide (aspect kept, at least 8 rows); itself when it is."""
    h, w = image.shape[:2]
    if width_px == w:
        return image
    return cv2.resize(image, (width_px, max(8, int(round(h * width_px / w)))), interpolation=cv2.INTER_AREA)


def _in_box(x: float, y: float, box: tuple[float, float, float, float]) -> bool:
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


class IncidentPipeline:
    def __init__(self, config: VisionConfig | None = None, camera: CameraModel | None = None, drone_id: str = "",
                 cell_lookup: GridLookup | None = None, restricted_zones: Sequence[Sequence[tuple[float, float]]] | None = None,
                 registry: IncidentRegistry | None = None, anchor: tuple[float, float] | None = None,
                 road_zones: Sequence[Sequence[tuple[float, float]]] | None = None) -> None:
        self.cfg = config or VisionConfig()
        self.camera = camera or self.cfg.camera.model()
        self.drone_id = drone_id
        self.cell_lookup = cell_lookup
        self.registry = registry or IncidentRegistry(self.cfg.incidents, id_prefix=f"inc-{drone_id}" if drone_id else "inc")
        zones = [list(z) for z in self.cfg.intrusion.zones] + [list(z) for z in (restricted_zones or [])]
        for i, z in enumerate(zones):
            if len(z) < 3:
                raise VisionError(f"restricted zone {i} has {len(z)} vertices; a polygon needs at least 3")
        self._zones_latlon = zones
        self._roads_latlon: list = []
        self.lane_vehicles: LaneVehicleDetector | None = None
        self.set_road_zones(road_zones or [])
        self._frame: LocalFrame | None = LocalFrame(*anchor) if anchor else None
        self.ego = EgoMotion(self.cfg.ego_motion)
        self.motion = MotionDetector(self.cfg.motion)
        self.fire = FireDetector(self.cfg.fire)
        self.tracker = Tracker(self.cfg.tracker)
        self.crowd = CrowdDetector(self.cfg.crowd)
        self.stopped: StoppedVehicleDetector | None = None
        self._stopped_mosaic = StoppedVehicleDetector(self.cfg.stopped_vehicle)  # without telemetry
        self.intrusion: IntrusionDetector | None = None
        self.fire_model: FireSmokeModel | None = None
        self.people_model: PeopleModel | None = None
        self.models_missing: dict[str, str] = {}  # "fire" / "people" -> why the model is not there
        self._load_models()
        self._h_ref = np.eye(3)  # current work px -> first-frame mosaic (no-telemetry positions)
        self.frames = 0
        self.registered_frames = 0
        self.busy_s = 0.0
        self._warned_no_pose = False
        self._geo_mode: bool | None = None
        self.tracks: list[Track] = []
        self.last_sightings: list[Sighting] = []
        # Where fire was seen lately, on the ground: (t_s, east_m, north_m). Smoke edges near it
        # look like walkers in frames where the flames themselves are not picked out.
        self._recent_fire: deque[tuple[float, float, float]] = deque(maxlen=256)

    def _on_flames(self, bbox_work: tuple[int, int, int, int], cscale: float) -> bool:
        """True when a fifth of a track's box is flame-coloured in this frame: flames flicker like
        walkers before the fire detector has confirmed them (no people colour passes its mask)."""
        flame = self.fire.mask
        if flame is None:
            return False
        x, y, w, h = (int(round(v / cscale)) for v in bbox_work)
        roi = flame[max(0, y):max(0, y + h + 1), max(0, x):max(0, x + w + 1)]
        return roi.size > 0 and cv2.countNonZero(roi) >= 0.2 * roi.size

    def _near_recent_fire(self, ground: tuple[float, float] | None, t_s: float) -> bool:
        """True when `ground` is within FIRE_EXCLUSION_M of a fire seen in the last FIRE_MEMORY_S:
        what moves there is smoke, not people (the per-frame mask misses frames without flames)."""
        while self._recent_fire and t_s - self._recent_fire[0][0] > FIRE_MEMORY_S:
            self._recent_fire.popleft()
        if ground is None or not self._recent_fire:
            return False
        e, n = ground
        return any((e - fe) ** 2 + (n - fn) ** 2 <= FIRE_EXCLUSION_M ** 2 for _, fe, fn in self._recent_fire)

    def _load_models(self) -> None:
        """The learned detectors from the models directory; a missing file turns its classes off
        (with the reason kept for the user), a wrong checksum or layout is an error."""
        m = self.cfg.models
        if not m.fire_smoke and not m.people_vehicles:
            return
        store = ModelStore.from_config(m)
        fire_file = m.fire_smoke
        if fire_file == "auto":
            fire_file = ("light_yolov8_flame_640_int8.onnx" if store.backend == "onnxruntime"
                         else "light_yolov8_flame_640.onnx")
        if fire_file:
            try:
                self.fire_model = FireSmokeModel(store.detector(fire_file), self.cfg.fire_model)
            except ModelMissingError as exc:
                self.models_missing["fire"] = str(exc)
        if m.people_vehicles:
            try:
                self.people_model = PeopleModel(store.detector(m.people_vehicles), self.cfg.people_model,
                                                self.cfg.crowd.min_people)
            except ModelMissingError as exc:
                self.models_missing["people"] = str(exc)

    def classes_off(self, with_telemetry: bool) -> list[str]:
        """What this pipeline will not report, and why (for the user, once per run)."""
        off = []
        scale = with_telemetry or self.cfg.geolocation.assumed_alt_m is not None
        if self.fire_model is None and not self.cfg.fire.colour_alone:
            off.append(f"fire/smoke: off, no smoke/fire model ({self.models_missing.get('fire', 'disabled')}); "
                       "colour alone is not trusted on real video")
        elif self.fire_model is None:
            off.append("fire/smoke: colour and flicker only (no smoke/fire model): expect false fires on real video")
        if self.people_model is None and not scale:
            off.append(f"crowd: off, no person model ({self.models_missing.get('people', 'disabled')}) and no scale "
                       "(no telemetry, no --altitude-m) to size people from motion")
        elif not scale:
            off.append("crowd: from the person model only (no telemetry, no --altitude-m: motion blobs are not sized)")
        if not scale:
            off.append("stopped_vehicle: off, sizes need metres (no telemetry, no --altitude-m)")
        if not with_telemetry:
            off.append("intrusion: off, zones need the drone's position (no telemetry)")
        return off

    # --- set-up that needs the first pose -------------------------------------------------
    def _ensure_frame(self, pose: Pose) -> LocalFrame:
        if self._frame is None:
            self._frame = LocalFrame(pose.lat, pose.lon)
        if self.intrusion is None:
            f = self._frame
            polys = [Polygon([f.to_en(lat, lon) for lat, lon in z]) for z in self._zones_latlon]
            self.intrusion = IntrusionDetector(self.cfg.intrusion, polys)
            self._apply_roads()
        return self._frame

    def set_road_zones(self, road_zones: Sequence[Sequence[tuple[float, float]]]) -> None:
        """The traffic lanes ((lat, lon) polygons, added to config `road_zones`) that stopped
        vehicles are checked against; standing cars already seen are remembered across a change."""
        roads = [list(z) for z in self.cfg.stopped_vehicle.road_zones] + [list(z) for z in road_zones]
        for i, z in enumerate(roads):
            if len(z) < 3:
                raise VisionError(f"road zone {i} has {len(z)} vertices; a polygon needs at least 3")
        self._roads_latlon = roads
        if getattr(self, "intrusion", None) is not None:  # set up already (first pose seen)
            self._apply_roads()

    def _apply_roads(self) -> None:
        f = self._frame
        roads = [Polygon([f.to_en(lat, lon) for lat, lon in z]).buffer(0) for z in self._roads_latlon]
        self.stopped = StoppedVehicleDetector(self.cfg.stopped_vehicle, roads)
        if not roads or not self.cfg.stopped_vehicle.by_appearance:
            self.lane_vehicles = None
        elif self.lane_vehicles is None:
            self.lane_vehicles = LaneVehicleDetector(self.cfg.stopped_vehicle, roads)
        else:
            self.lane_vehicles.set_lanes(roads)

    # --- one frame ------------------------------------------------------------------------
    def process(self, frame: np.ndarray, t_s: float, pose: Pose | None = None) -> list[IncidentEvent]:
        """Run one frame; returns the incident state changes it caused."""
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise VisionError(f"frame at t={t_s:.3f}s is not a BGR uint8 image (got "
                              f"{getattr(frame, 'shape', type(frame).__name__)})")
        started = time.perf_counter()
        self.frames += 1
        cfg = self.cfg
        full_h, full_w = frame.shape[:2]
        ww = min(cfg.processing.work_width_px, full_w)
        wh = max(8, int(round(full_h * ww / full_w)))
        scale = full_w / ww
        work = _shrunk(frame, ww)
        gray = cv2.cvtColor(work, cv2.COLOR_BGR2GRAY)
        ew = min(cfg.processing.ego_width_px, ww)
        ego_gray = _shrunk(gray, ew)
        cw = min(cfg.processing.colour_width_px, ww)
        colour = _shrunk(work, cw)
        h_ego = self.ego.update(ego_gray)
        h_work = _scale_h(h_ego, ww / ew)
        if h_work is not None:
            self.registered_frames += 1
            self._h_ref = self._h_ref @ np.linalg.inv(h_work)

        camera = self.camera
        if (camera.width_px, camera.height_px) != (full_w, full_h):
            camera = CameraModel(full_w, full_h, camera.hfov_deg)
        projector = self._projector(pose, camera, t_s)

        # Without telemetry or a given altitude there is no scale: metres below are a working
        # guess for gating tracks only, and size-based classes are off.
        has_scale = projector is not None or cfg.geolocation.assumed_alt_m is not None
        assumed_mpp = (cfg.geolocation.assumed_alt_m or 60.0) / camera.focal_px * scale
        geo_mode = projector is not None
        if geo_mode != self._geo_mode:
            # Telemetry came or went: track positions switch between map metres and the image
            # mosaic, which must not mix in one history.
            self._geo_mode = geo_mode
            self.tracker.reset()
            self._recent_fire.clear()

        m_per_px, to_ground = self._ground_scale(projector, scale, assumed_mpp, full_w, full_h)

        # Fire first: its mask (grown generously, smoke drifts) is kept out of motion detection.
        cscale = ww / cw
        fire_blobs = self.fire.update(colour, _scale_h(h_work, cw / ww), t_s,
                                      lambda x, y: m_per_px(x * cscale, y * cscale) * cscale)
        exclude = None
        if self.fire.candidate_centres:
            # Smoke drifts ~20 m downwind and its edges look like walkers to motion detection.
            mask = np.zeros((wh, ww), np.uint8)
            radius = max(4, int(25.0 / m_per_px(ww / 2, wh / 2)))
            for cx, cy in self.fire.candidate_centres:
                cv2.circle(mask, (int(cx * cscale), int(cy * cscale)), radius, 255, -1)
                if has_scale:
                    self._recent_fire.append((t_s, *to_ground(cx * cscale, cy * cscale)))
            exclude = mask

        # Motion blobs are people and vehicles only by their size in metres: with no scale they
        # would feed nothing (crowd and stopped-vehicle-by-size are off), so they are not computed.
        blobs = self.motion.update(cv2.GaussianBlur(gray, (3, 3), 0), h_work, t_s, m_per_px, exclude) if has_scale else []

        def full_gray_roi(x0: int, y0: int, x1: int, y1: int):
            if x0 < 0 or y0 < 0 or x1 > full_w or y1 > full_h or x1 <= x0 or y1 <= y0:
                return None
            return cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)

        tracks = (self.tracker.update(blobs, h_work, t_s, full_gray_roi, scale, m_per_px, to_ground, (ww, wh))
                  if has_scale else [])
        self.tracks = tracks

        sightings = self._model_sightings(frame, t_s, scale, full_w / cw, to_ground)
        for b in (fire_blobs if cfg.fire.colour_alone else ()):
            x, y = b.x * cscale, b.y * cscale
            bx, by, bw, bh = b.bbox
            sightings.append(Sighting("fire", b.key, x, y, (int(bx * cscale), int(by * cscale), int(bw * cscale) + 1,
                                                              int(bh * cscale) + 1), b.confidence, to_ground(x, y)))
        if has_scale:
            # People sized from motion; where the person model saw a vehicle, it is not people.
            pm = self.people_model
            vboxes = pm.vehicle_boxes if pm is not None and t_s - pm.vehicles_t <= 1.0 else []
            walkers = [tr for tr in tracks if not any(_in_box(tr.x, tr.y, b) for b in vboxes)
                       and not self._on_flames(tr.bbox, cscale)
                       and not self._near_recent_fire(to_ground(tr.x, tr.y), t_s)]
            sightings += self.crowd.update(walkers, t_s)
        if projector is not None and self.stopped is not None and self.intrusion is not None:
            sightings += self.stopped.update(tracks, t_s)
            sightings += self.intrusion.update(tracks, t_s)
            footprint = self._footprint(projector, work, scale) if self.lane_vehicles is not None else None
            if footprint is not None:
                ground_to_work = np.diag([1 / scale, 1 / scale, 1.0]) @ projector.world_to_image
                sightings += self.lane_vehicles.update(work, ground_to_work, footprint, t_s, m_per_px, to_ground)
        elif projector is None and cfg.geolocation.assumed_alt_m is not None:
            # Stopped vehicles work on mosaic positions too (no lat/lon to report, but a box).
            sightings += self._stopped_mosaic.update(tracks, t_s)
        self.last_sightings = sightings

        events = self._to_events(sightings, frame, t_s, projector, scale)
        for rec in self.registry.expire(t_s, self.drone_id):
            events.append(event(rec, IncidentState.END))
        self.busy_s += time.perf_counter() - started
        return events

    def _projector(self, pose: Pose | None, camera: CameraModel, t_s: float) -> Projector | None:
        """Where the frame's pixels lie on the ground, from telemetry (None without a usable pose)."""
        if pose is None:
            if not self._warned_no_pose:
                self._warned_no_pose = True
                log.warning("%s: no telemetry at t=%.2fs; reporting pixel boxes without lat/lon",
                            self.drone_id or "vision", t_s)
            return None
        projector = Projector(pose, camera, self.cfg.camera, self.cfg.geolocation, self._ensure_frame(pose))
        return projector if projector.valid else None

    def _ground_scale(self, projector: Projector | None, scale: float, assumed_mpp: float, full_w: int,
                      full_h: int) -> tuple[Callable[[float, float], float], Callable[[float, float], tuple]]:
        """(metres per working pixel at (x, y), ground east/north of working pixel (x, y)): from the
        projector, else from the assumed altitude on the image mosaic."""
        if projector is not None:
            centre_mpp = projector.m_per_px(full_w / 2, full_h / 2) * scale

            def m_per_px(x: float, y: float) -> float:
                v = projector.m_per_px(x * scale, y * scale) * scale
                return v if v > 0 else centre_mpp

            def to_ground(x: float, y: float):
                return projector.ground_en(x * scale, y * scale)
            return m_per_px, to_ground

        def assumed_m_per_px(x: float, y: float) -> float:
            return assumed_mpp

        def mosaic_ground(x: float, y: float):
            p = self._h_ref @ np.array([x, y, 1.0])
            return float(p[0] / p[2] * assumed_mpp), float(-p[1] / p[2] * assumed_mpp)
        return assumed_m_per_px, mosaic_ground

    def _model_sightings(self, frame: np.ndarray, t_s: float, scale: float, colour_to_full: float,
                         to_ground: Callable[[float, float], tuple]) -> list[Sighting]:
        """What the ONNX models (when loaded) see in the full frame, placed on the ground."""
        sightings: list[Sighting] = []
        if self.fire_model is not None and self.fire_model.due(t_s):
            flames = [(x * colour_to_full, y * colour_to_full) for x, y in self.fire.candidate_centres]
            for s in self.fire_model.update(frame, t_s, flames, scale):
                s.ground = to_ground(s.x, s.y)
                sightings.append(s)
        if self.people_model is not None:
            for s in self.people_model.update(frame, t_s, scale, self._h_ref):
                s.ground = to_ground(s.x, s.y)
                sightings.append(s)
        return sightings

    @staticmethod
    def _footprint(projector: Projector, work: np.ndarray, scale: float) -> Polygon | None:
        """The ground the frame shows (east/north metres), or None with the horizon in view."""
        full_w, full_h = work.shape[1] * scale, work.shape[0] * scale
        corners = projector.ground_many(np.array([[0, 0], [full_w, 0], [full_w, full_h], [0, full_h]], float))
        return None if np.isnan(corners).any() else Polygon(corners)

    def _to_events(self, sightings: list[Sighting], frame: np.ndarray, t_s: float, projector: Projector | None,
                   scale: float) -> list[IncidentEvent]:
        events: list[IncidentEvent] = []
        for s in sightings:
            x, y, w, h = s.bbox
            bbox_full = (int(x * scale), int(y * scale), max(1, int(w * scale)), max(1, int(h * scale)))
            lat = lon = err = None
            if projector is not None and s.ground is not None:
                lat, lon = projector.latlon(*s.ground)
                err = projector.error_m(s.x * scale, s.y * scale)
            obs = Observation(IncidentKind(s.kind), s.key, t_s, s.confidence, self.drone_id, lat, lon, err, bbox_full)
            rec, state = self.registry.observe(obs, self.cell_lookup)
            snap = self.cfg.snapshot
            if state == IncidentState.NEW or (s.confidence > rec.snapshot_confidence + 0.05
                                              and t_s - rec.snapshot_t >= snap.min_interval_s):
                label = f"{s.kind} {s.confidence:.2f} {rec.id}"
                rec.snapshot_jpeg = encode_jpeg(annotate(frame, bbox_full, label, s.kind, snap.width_px), snap.max_bytes)
                rec.snapshot_confidence, rec.snapshot_t = s.confidence, t_s
            if state is not None:
                self.registry.mark_emitted(rec, t_s)
                events.append(event(rec, state))
        return events

    def close(self, t_s: float) -> list[IncidentEvent]:
        """End this drone's open incidents (end of video / stream)."""
        return [event(rec, IncidentState.END) for rec in self.registry.end_all(t_s, self.drone_id)]

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.busy_s if self.busy_s else 0.0
