"""Optional DNN detector through OpenCV DNN: an ONNX model given by path, never downloaded.

Expects a YOLO-style output (N x (4 + classes)) or (N x (5 + classes)); `class_kinds` maps
class ids to "person" / "vehicle" / "fire". Boxes come back as Blobs in work pixels, so they
feed the same tracker and incident stages as the classical detectors.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..config import DnnConfig
from ..errors import VisionError
from .base import Blob


class DnnDetector:
    def __init__(self, cfg: DnnConfig) -> None:
        if cfg.model_path is None:
            raise VisionError("dnn: model_path is not set")
        path = Path(cfg.model_path)
        if not path.is_file():
            raise VisionError(f"dnn: model {path} does not exist")
        try:
            self.net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            raise VisionError(f"dnn: cannot load ONNX model {path}: {exc}") from exc
        self.cfg = cfg
        self._n = 0

    def update(self, bgr_work: np.ndarray) -> list[Blob]:
        self._n += 1
        if self._n % self.cfg.every_n_frames:
            return []
        size = self.cfg.input_size_px
        blob = cv2.dnn.blobFromImage(bgr_work, 1 / 255.0, (size, size), swapRB=True)
        self.net.setInput(blob)
        out = np.squeeze(self.net.forward())
        if out.ndim != 2:
            return []
        if out.shape[0] < out.shape[1]:
            out = out.T
        h, w = bgr_work.shape[:2]
        sx, sy = w / size, h / size
        blobs = []
        for row in out:
            scores = row[4:]
            cls = int(np.argmax(scores))
            score = float(scores[cls])
            kind = self.cfg.class_kinds.get(cls)
            if kind is None or score < self.cfg.score_threshold:
                continue
            cx, cy, bw, bh = row[:4]
            x, y = int((cx - bw / 2) * sx), int((cy - bh / 2) * sy)
            blobs.append(Blob(kind, float(cx * sx), float(cy * sy), (x, y, int(bw * sx), int(bh * sy)),
                              int(bw * bh * sx * sy), confidence=score))
        return blobs
