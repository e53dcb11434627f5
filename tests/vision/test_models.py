"""Pretrained models: loaded only from a models directory, checked by sha256 and output layout,
with errors that name the file and the fault; the decoders read each layout right."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from vision import IncidentPipeline, VisionConfig
from vision.errors import ModelChecksumError, ModelError, ModelLayoutError, ModelMissingError
from vision.models import FIRE_CLASSES, MODELS, ModelStore, decode, letterbox

SHARED_MODELS = Path(__file__).resolve().parents[2].parent / "shared" / "models"
needs_models = pytest.mark.skipif(not (SHARED_MODELS / "yolox_nano_416.onnx").is_file(),
                                  reason=f"pretrained models not found in {SHARED_MODELS} (see docs/vision.md)")


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(ModelMissingError, match="yolox_nano_416.onnx is not in"):
        ModelStore(tmp_path, "cv2").detector("yolox_nano_416.onnx")
    with pytest.raises(ModelMissingError, match="PATROL_MODELS"):
        ModelStore(None, "cv2").detector("yolox_nano_416.onnx")
    with pytest.raises(ModelError, match="not a known model file"):
        ModelStore(tmp_path, "cv2").detector("my_model.onnx")


def test_a_different_file_under_a_known_name_fails_its_checksum(tmp_path):
    (tmp_path / "light_yolov8_flame_640.onnx").write_bytes(b"\x08\x07" + bytes(1000))
    with pytest.raises(ModelChecksumError, match=r"light_yolov8_flame_640.onnx: sha256 [0-9a-f]{64} is not the known"):
        ModelStore(tmp_path, "cv2").detector("light_yolov8_flame_640.onnx")


@needs_models
def test_truncated_copy_fails_its_checksum(tmp_path):
    data = (SHARED_MODELS / "yolox_nano_416.onnx").read_bytes()
    (tmp_path / "yolox_nano_416.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelChecksumError, match="yolox_nano_416.onnx"):
        ModelStore(tmp_path, "cv2").detector("yolox_nano_416.onnx")


@needs_models
def test_wrong_output_layout_is_named(tmp_path):
    """A model whose output is not what its decoder reads is refused before it is used."""
    shutil.copy(SHARED_MODELS / "yolox_nano_416.onnx", tmp_path)
    as_two_classes = dataclasses.replace(MODELS["yolox_nano_416.onnx"], classes=FIRE_CLASSES)
    with pytest.raises(ModelLayoutError, match=r"output shape \(1, 3549, 85\), but its yolox decoder reads "
                                               r"\(1, 3549, 7\)"):
        ModelStore(tmp_path, "cv2").detector("yolox_nano_416.onnx", as_two_classes)


def test_pipeline_runs_without_models_and_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("PATROL_MODELS", str(tmp_path))
    pipe = IncidentPipeline(VisionConfig())
    assert pipe.fire_model is None and pipe.people_model is None
    off = pipe.classes_off(with_telemetry=False)
    assert any(line.startswith("fire/smoke: off") and str(tmp_path) in line for line in off)
    assert pipe.process(np.zeros((360, 640, 3), np.uint8), 0.0) == []


def test_a_damaged_model_stops_the_pipeline(monkeypatch, tmp_path):
    """A wrong file is not quietly skipped like a missing one: the operator must replace it."""
    (tmp_path / "yolox_nano_416.onnx").write_bytes(b"not a model")
    monkeypatch.setenv("PATROL_MODELS", str(tmp_path))
    with pytest.raises(ModelChecksumError):
        IncidentPipeline(VisionConfig())


def _rows(n: int, width: int) -> np.ndarray:
    return np.zeros((1, n, width), np.float32)


def test_yolox_decode_uses_grid_and_stride():
    spec = MODELS["yolox_nano_416.onnx"]
    out = _rows(3549, 85)
    i = 52 * 52 + 3 * 26 + 5  # stride-16 cell (x=5, y=3)
    out[0, i, :4] = [0.5, 0.25, np.log(2.0), np.log(4.0)]
    out[0, i, 4], out[0, i, 5 + 2] = 0.9, 0.8  # objectness, "car"
    boxes, cls, score = decode(spec, out, 0.5)
    assert spec.classes[int(cls[0])] == "car" and score[0] == pytest.approx(0.72)
    np.testing.assert_allclose(boxes[0], [(5.5) * 16, (3.25) * 16, 32, 64], rtol=1e-5)


def test_yolov5_and_yolov8_decode():
    out = _rows(25200, 85)
    out[0, 7, :6] = [320, 200, 40, 80, 0.9, 0.7]  # person
    boxes, cls, score = decode(MODELS["yolov5n_640.onnx"], out, 0.5)
    assert cls.tolist() == [0] and score[0] == pytest.approx(0.63) and boxes[0].tolist() == [320, 200, 40, 80]
    out8 = np.zeros((1, 6, 8400), np.float32)
    out8[0, :, 11] = [100, 120, 50, 60, 0.2, 0.75]  # fire, no objectness
    boxes, cls, score = decode(MODELS["light_yolov8_flame_640.onnx"], out8, 0.5)
    assert FIRE_CLASSES[int(cls[0])] == "fire" and score[0] == pytest.approx(0.75)


def test_letterbox_top_left_and_centred():
    img = np.zeros((360, 640, 3), np.uint8)
    canvas, r, dx, dy = letterbox(img, 416, centred=False)
    assert (r, dx, dy) == (0.65, 0, 0) and canvas[300, 10, 0] == 114 and canvas[10, 10, 0] == 0
    canvas, r, dx, dy = letterbox(img, 640, centred=True)
    assert (r, dx, dy) == (1.0, 0, 140) and canvas[10, 10, 0] == 114 and canvas[320, 320, 0] == 0
