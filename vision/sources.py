"""Frame sources: video file, RTSP/UDP/HTTP stream (OpenCV's FFmpeg backend), image folder,
synthetic camera. Every frame carries a timestamp in seconds on the source's clock: stream time
for files and folders, the epoch for live streams (so it lines up with live telemetry).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from common.values import Pose

from .errors import VisionError

log = logging.getLogger(__name__)

_STREAM_SCHEMES = ("rtsp://", "rtsps://", "udp://", "rtp://", "http://", "https://", "tcp://", "srt://")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True, slots=True)
class Frame:
    index: int
    t_s: float
    image: np.ndarray  # BGR uint8
    pose: Pose | None = None  # when the source knows it (synthetic camera)


class FileSource:
    """A video file decoded by FFmpeg. Raises VisionError on unreadable or truncated files,
    after yielding every frame that did decode."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise VisionError(f"video file {self.path} does not exist")
        if self.path.stat().st_size == 0:
            raise VisionError(f"video file {self.path} is empty (0 bytes)")
        params = [cv2.CAP_PROP_N_THREADS, int(threads)] if threads else []
        self._cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG, params)
        if not self._cap.isOpened():
            raise VisionError(f"cannot open video {self.path}: FFmpeg cannot decode it (corrupt or truncated file?)")
        self.fps = self._cap.get(cv2.CAP_PROP_FPS) or 0.0
        if not 0 < self.fps < 1000:
            self.fps = 30.0
        self.expected_frames = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.width_px = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height_px = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))

    def close(self) -> None:
        self._cap.release()

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        try:
            while True:
                ok, image = self._cap.read()
                if not ok or image is None:
                    break
                yield Frame(index, index / self.fps, image)
                index += 1
        finally:
            self._cap.release()
        if index == 0:
            raise VisionError(f"video {self.path}: no frame could be decoded (corrupt file?)")
        # Containers report their length; a file that stops well short of it was cut off.
        if self.expected_frames > 10 and index < 0.95 * self.expected_frames:
            raise VisionError(f"video {self.path} is truncated: decoded {index} of {self.expected_frames} frames")


class StreamSource:
    """A live stream (RTSP, UDP MPEG-TS, RTP/SDP, HTTP) through OpenCV's FFmpeg backend.

    Read failures are retried for `stall_timeout_s`; after that the stream is declared lost.
    """

    def __init__(self, url: str, stall_timeout_s: float = 5.0) -> None:
        self.url = url
        self.stall_timeout_s = stall_timeout_s
        self._cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(stall_timeout_s * 1000),
                                                           cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(stall_timeout_s * 1000)])
        if not self._cap.isOpened():
            raise VisionError(f"cannot open stream {url} within {stall_timeout_s:.0f} s")

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        last_ok = time.monotonic()
        try:
            while True:
                ok, image = self._cap.read()
                if ok and image is not None:
                    last_ok = time.monotonic()
                    yield Frame(index, time.time(), image)
                    index += 1
                elif time.monotonic() - last_ok > self.stall_timeout_s:
                    raise VisionError(f"stream {self.url} lost: no frame for {self.stall_timeout_s:.0f} s")
                else:
                    time.sleep(0.01)
        finally:
            self._cap.release()


class ImageFolderSource:
    """Images in name order, stamped index / fps."""

    def __init__(self, folder: str | Path, fps: float = 10.0) -> None:
        self.folder = Path(folder)
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not self.files:
            raise VisionError(f"image folder {self.folder} holds no images ({', '.join(sorted(_IMAGE_SUFFIXES))})")
        self.fps = fps

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.files):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise VisionError(f"image {path} cannot be decoded")
            yield Frame(index, index / self.fps, image)


class SyntheticSource:
    """Frames rendered by sim.camera.SyntheticCamera along a scripted flight; each carries its pose."""

    def __init__(self, camera, flight, duration_s: float, fps: float = 30.0) -> None:
        self.camera, self.flight, self.duration_s, self.fps = camera, flight, duration_s, fps

    def __iter__(self) -> Iterator[Frame]:
        n = int(round(self.duration_s * self.fps))
        for index in range(n):
            t = index / self.fps
            pose = self.flight.pose(self.camera.scene, t)
            yield Frame(index, t, self.camera.render(pose, t), pose)


def is_stream(spec: str | Path) -> bool:
    """A live stream URL (read as it comes, reopened when lost), not a file or folder."""
    return str(spec).lower().startswith(_STREAM_SCHEMES)


def open_source(spec: str | Path, fps: float = 10.0) -> FileSource | StreamSource | ImageFolderSource:
    """A source from a path or URL: streams by scheme, folders of images, else a video file."""
    text = str(spec)
    if is_stream(text):
        return StreamSource(text)
    path = Path(text)
    if path.is_dir():
        return ImageFolderSource(path, fps=fps)
    return FileSource(path)


def safe_source_name(spec: str) -> str:
    """A video source as it may be shown: a stream URL without its user:password."""
    parts = urlsplit(spec)
    if parts.scheme and "@" in parts.netloc:
        return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    return spec
