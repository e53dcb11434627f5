"""Pretrained ONNX detectors, loaded from a models directory and checked by sha256.

The project never ships or downloads weights: an operator puts the files named in `MODELS`
into a directory (config `models.dir` or env `PATROL_MODELS`; docs/vision.md says where each
file comes from). Every file is checked against the sha256 this release knows for its name
(a different file under a known name could detect anything), and its output shape against the
layout its decoder reads, before it is used:

    store = ModelStore.from_config(cfg.models)        # None dir -> every model is "missing"
    det = store.detector("yolox_nano_416.onnx")       # ModelMissingError / ModelChecksumError / ModelLayoutError
    boxes = det.detect(bgr)                           # list[Detection] in the image's pixels

Backends: onnxruntime when installed (faster here, and the only one that runs the int8 smoke/fire
model), else OpenCV's cv2.dnn.
"""
from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import ModelChecksumError, ModelError, ModelLayoutError, ModelMissingError

ENV_MODELS_DIR = "PATROL_MODELS"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """How one known file is fed and read."""

    file: str
    sha256: str
    input_px: int
    layout: str  # "yolox" | "yolov5" | "yolov8"
    classes: tuple[str, ...]  # class names by id
    rgb: bool  # RGB channel order (else BGR)
    unit_scale: bool  # pixels / 255 (else 0..255)
    centred: bool  # letterbox centred (else image at the top-left)
    needs_onnxruntime: bool = False

    @property
    def output_shape(self) -> tuple[int, ...]:
        s = self.input_px
        cells = sum((s // st) ** 2 for st in (8, 16, 32))
        if self.layout == "yolov8":
            return (1, 4 + len(self.classes), cells)
        anchors = 1 if self.layout == "yolox" else 3
        return (1, anchors * cells, 5 + len(self.classes))


COCO_CLASSES = (
    "person", "bicycle", "car", "motorbike", "aeroplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "sofa",
    "pottedplant", "bed", "diningtable", "toilet", "tvmonitor", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush")
FIRE_CLASSES = ("smoke", "fire")

# The files this release knows (sums as published with them; see docs/vision.md for origins).
MODELS: dict[str, ModelSpec] = {s.file: s for s in (
    ModelSpec("yolox_nano_416.onnx", "e8af074932d4ed7e232278e3055cefcdea3edf178874a3694ae292649fb464dd",
              416, "yolox", COCO_CLASSES, rgb=False, unit_scale=False, centred=False),
    ModelSpec("yolov5n_640.onnx", "ad52e2905d0fca5869c23a55c7e1f369186b03431f0fc25ea2ea3e8c6f2cfb60",
              640, "yolov5", COCO_CLASSES, rgb=True, unit_scale=True, centred=True),
    ModelSpec("yolov5n_960.onnx", "ece4344ffb81350c2b510ed90803dc69eefbb1f48c192abb893b5e8d221a9e9f",
              960, "yolov5", COCO_CLASSES, rgb=True, unit_scale=True, centred=True),
    ModelSpec("light_yolov8_flame_640.onnx", "1fc8ae466e18cf92eecf7aa640e0e0d834708d29f961eebe67e2b4347d68eacc",
              640, "yolov8", FIRE_CLASSES, rgb=True, unit_scale=True, centred=True),
    ModelSpec("light_yolov8_flame_640_int8.onnx", "2333a9d01e713cd808b2ae074e6062acba7fb94bd123ed8f3ab2756b93339882",
              640, "yolov8", FIRE_CLASSES, rgb=True, unit_scale=True, centred=True, needs_onnxruntime=True),
)}


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Detection:
    """One model box in the pixels of the image given to `detect`."""

    cls: str
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2

    @property
    def size(self) -> float:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])


_verified: dict[tuple[str, int, float], str] = {}  # (path, size, mtime) -> sha256 already computed
_lock = threading.Lock()


def file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime)
    with _lock:
        if key in _verified:
            return _verified[key]
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _lock:
        _verified[key] = digest
    return digest


def letterbox(bgr: np.ndarray, size: int, centred: bool) -> tuple[np.ndarray, float, int, int]:
    """The image scaled to fit size x size on a grey (114) canvas; returns (canvas, scale, dx, dy)."""
    h, w = bgr.shape[:2]
    r = min(size / w, size / h)
    nw, nh = max(1, int(round(w * r))), max(1, int(round(h * r)))
    canvas = np.full((size, size, 3), 114, np.uint8)
    dx, dy = ((size - nw) // 2, (size - nh) // 2) if centred else (0, 0)
    canvas[dy:dy + nh, dx:dx + nw] = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR)
    return canvas, r, dx, dy


def _grid_strides(size: int) -> tuple[np.ndarray, np.ndarray]:
    grids, strides = [], []
    for st in (8, 16, 32):
        n = size // st
        ys, xs = np.mgrid[0:n, 0:n]
        grids.append(np.stack([xs.ravel(), ys.ravel()], 1))
        strides.append(np.full((n * n, 1), st))
    return np.concatenate(grids).astype(np.float32), np.concatenate(strides).astype(np.float32)


def decode(spec: ModelSpec, out: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw output -> (boxes cx,cy,w,h in input px, best class id, score) of rows >= min_score."""
    if spec.layout == "yolov8":  # (1, 4+C, N): no objectness, class scores already sigmoid
        rows = out[0].T
        cls_scores = rows[:, 4:]
        boxes = rows[:, :4]
    else:  # (1, N, 5+C): objectness x class score
        rows = out[0]
        cls_scores = rows[:, 5:] * rows[:, 4:5]
        boxes = rows[:, :4]
        if spec.layout == "yolox":  # raw regression: offsets in grid cells, log sizes
            grid, stride = _grid_strides(spec.input_px)
            boxes = np.concatenate([(boxes[:, :2] + grid) * stride, np.exp(np.minimum(boxes[:, 2:4], 10.0)) * stride], 1)
    cls = np.argmax(cls_scores, 1)
    score = cls_scores[np.arange(len(cls)), cls]
    keep = score >= min_score
    return boxes[keep], cls[keep], score[keep]


class OnnxDetector:
    """One checked model on one backend. `detect` is not re-entrant on the cv2 backend: use one
    detector per thread (each pipeline loads its own)."""

    def __init__(self, spec: ModelSpec, path: Path, backend: str, threads: int = 1) -> None:
        self.spec, self.path = spec, path
        self.backend = backend
        self._ort = None
        self._net = None
        try:
            if backend == "onnxruntime":
                import onnxruntime as ort

                so = ort.SessionOptions()
                so.intra_op_num_threads = threads
                so.inter_op_num_threads = 1
                so.log_severity_level = 3
                self._ort = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
                self._input = self._ort.get_inputs()[0].name
            else:
                self._net = cv2.dnn.readNetFromONNX(str(path))
        except Exception as exc:  # onnxruntime raises its own types; cv2.error for OpenCV
            raise ModelError(f"model {path}: cannot be loaded by {backend}: {exc}") from exc
        s = spec.input_px
        try:
            got = tuple(self._forward(np.zeros((1, 3, s, s), np.float32)).shape)
        except Exception as exc:
            raise ModelLayoutError(f"model {path}: does not take a 1x3x{s}x{s} input ({exc})") from exc
        if got != spec.output_shape:
            raise ModelLayoutError(f"model {path}: output shape {got}, but its {spec.layout} decoder reads "
                                   f"{spec.output_shape}")

    def _forward(self, blob: np.ndarray) -> np.ndarray:
        if self._ort is not None:
            return self._ort.run(None, {self._input: blob})[0]
        self._net.setInput(blob)
        return self._net.forward()

    def detect(self, bgr: np.ndarray, min_score: float, classes: set[str] | None = None,
               nms_iou: float = 0.45) -> list[Detection]:
        spec = self.spec
        canvas, r, dx, dy = letterbox(bgr, spec.input_px, spec.centred)
        img = canvas[:, :, ::-1] if spec.rgb else canvas
        blob = np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)
        if spec.unit_scale:
            blob *= 1.0 / 255.0
        boxes, cls, score = decode(spec, self._forward(blob), min_score)
        if classes is not None:
            wanted = np.array([spec.classes[c] in classes for c in cls], bool)
            boxes, cls, score = boxes[wanted], cls[wanted], score[wanted]
        if not len(score):
            return []
        xywh = np.stack([boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 1] - boxes[:, 3] / 2, boxes[:, 2], boxes[:, 3]], 1)
        keep = cv2.dnn.NMSBoxesBatched(xywh.tolist(), score.tolist(), cls.tolist(), min_score, nms_iou)
        out = []
        for i in np.array(keep).ravel():
            x, y, w, h = xywh[i]
            x0, y0 = (x - dx) / r, (y - dy) / r
            out.append(Detection(spec.classes[int(cls[i])], float(score[i]), (x0, y0, x0 + w / r, y0 + h / r)))
        return out


class ModelStore:
    """The models directory; hands out checked detectors by file name."""

    def __init__(self, directory: Path | None, backend: str = "auto", threads: int = 1) -> None:
        self.directory = directory
        if backend == "auto":
            backend = "onnxruntime" if onnxruntime_available() else "cv2"
        elif backend == "onnxruntime" and not onnxruntime_available():
            raise ModelError("models.backend is onnxruntime but it is not installed "
                             "(pip install 'dan-leopard-patrol[models]')")
        self.backend = backend
        self.threads = threads

    @classmethod
    def from_config(cls, cfg) -> "ModelStore":
        directory = cfg.dir if cfg.dir is not None else os.environ.get(ENV_MODELS_DIR) or None
        return cls(Path(directory) if directory else None, cfg.backend, cfg.threads)

    def path_of(self, file: str) -> Path:
        if self.directory is None:
            raise ModelMissingError(f"no models directory (set models.dir in the vision config or env "
                                    f"{ENV_MODELS_DIR}) for {file}")
        path = self.directory / file
        if not path.is_file():
            raise ModelMissingError(f"model {file} is not in {self.directory}")
        return path

    def detector(self, file: str, spec: ModelSpec | None = None) -> OnnxDetector:
        """The checked detector for a known file name (spec: only to read a file another way, in tests)."""
        spec = spec or MODELS.get(file)
        if spec is None:
            raise ModelError(f"model {file}: not a known model file (known: {', '.join(MODELS)})")
        path = self.path_of(file)
        digest = file_sha256(path)
        if digest != spec.sha256:
            raise ModelChecksumError(f"model {path}: sha256 {digest} is not the known {spec.sha256} "
                                     f"(a different or damaged file)")
        backend = self.backend
        if spec.needs_onnxruntime and backend != "onnxruntime":
            raise ModelError(f"model {path}: runs only in onnxruntime (int8), which is not installed")
        return OnnxDetector(spec, path, backend, self.threads)
