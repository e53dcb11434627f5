"""Fitting incident snapshots into the alert size cap (≤ 30 KB JPEG) for weak mobile links."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def fit_jpeg(jpeg: bytes | None, max_bytes: int) -> bytes | None:
    """The snapshot re-encoded (lower quality, then smaller) until it fits; None if it cannot."""
    if not jpeg:
        return None
    if len(jpeg) <= max_bytes:
        return jpeg
    try:
        import cv2
        import numpy as np
    except ImportError:  # pragma: no cover - opencv is a project dependency
        log.warning("snapshot of %d bytes dropped: opencv unavailable to shrink it", len(jpeg))
        return None
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        log.warning("snapshot of %d bytes dropped: not a decodable JPEG", len(jpeg))
        return None
    for _ in range(8):
        for quality in (80, 65, 50, 35):
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok and len(buf) <= max_bytes:
                return buf.tobytes()
        h, w = image.shape[:2]
        if w < 64:
            break
        image = cv2.resize(image, (w * 3 // 4, h * 3 // 4), interpolation=cv2.INTER_AREA)
    log.warning("snapshot of %d bytes could not be fitted into %d bytes; alert sent without it", len(jpeg), max_bytes)
    return None
