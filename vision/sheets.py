"""Contact sheets: one PNG of many incident snapshots, for `patrol watch` and `patrol vision-eval`."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def contact_sheet(snapshots: dict[str, tuple[bytes, str]], path: Path, cols: int = 3) -> None:
    """A PNG grid of each incident's best snapshot with its id and kind."""
    tiles = []
    for inc_id, (jpeg, caption) in snapshots.items():
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            continue
        img = cv2.resize(img, (320, int(320 * img.shape[0] / img.shape[1])))
        bar = np.full((22, 320, 3), 30, np.uint8)
        cv2.putText(bar, caption[:48], (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(np.vstack([bar, img]))
    if not tiles:
        sheet = np.full((60, 480, 3), 240, np.uint8)
        cv2.putText(sheet, "no incidents", (10, 38), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
    else:
        h = max(t.shape[0] for t in tiles)
        tiles = [np.vstack([t, np.zeros((h - t.shape[0], 320, 3), np.uint8)]) for t in tiles]
        while len(tiles) % cols:
            tiles.append(np.zeros_like(tiles[0]))
        rows = [np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)]
        sheet = np.vstack(rows)
    cv2.imwrite(str(path), sheet)
