"""Annotated incident snapshots: the frame, downscaled, the box and a label, JPEG <= max_bytes."""
from __future__ import annotations

import cv2
import numpy as np

_COLOURS = {"fire": (0, 80, 255), "crowd": (255, 160, 0), "stopped_vehicle": (0, 220, 255), "intrusion": (60, 60, 255)}


def annotate(frame: np.ndarray, bbox_px: tuple[int, int, int, int] | None, label: str, kind: str,
             width_px: int = 640) -> np.ndarray:
    h, w = frame.shape[:2]
    scale = min(1.0, width_px / w)
    img = cv2.resize(frame, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else frame.copy()
    colour = _COLOURS.get(kind, (255, 255, 255))
    if bbox_px is not None:
        x, y, bw, bh = (int(round(v * scale)) for v in bbox_px)
        pad = 6
        cv2.rectangle(img, (x - pad, y - pad), (x + bw + pad, y + bh + pad), colour, 2)
        ty = max(14, y - pad - 4)
        cv2.putText(img, label, (max(0, x - pad), ty), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, label, (max(0, x - pad), ty), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return img


def encode_jpeg(img: np.ndarray, max_bytes: int = 30_000) -> bytes:
    """JPEG no larger than max_bytes: lower quality first, then shrink the image."""
    while True:
        for quality in (85, 70, 55, 40, 30):
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok and len(buf) <= max_bytes:
                return buf.tobytes()
        img = cv2.resize(img, (max(16, img.shape[1] * 3 // 4), max(16, img.shape[0] * 3 // 4)), interpolation=cv2.INTER_AREA)
