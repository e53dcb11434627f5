"""The learned detectors' rules, on scripted model outputs: alarms need evidence held over model
frames; crowds need standing pedestrians, never walkers or riders."""
from __future__ import annotations

import numpy as np

from vision.config import FireModelConfig, PeopleModelConfig
from vision.detectors.learned import FireSmokeModel, PeopleModel
from vision.models import Detection

FRAME = np.zeros((720, 1280, 3), np.uint8)


class ScriptedModel:
    """Stands in for a checked ONNX detector: returns what `script(run)` says."""

    def __init__(self, script):
        self.script, self.run = script, 0

    def detect(self, bgr, min_score, classes=None, nms_iou=0.45):
        self.run += 1
        return [d for d in self.script(self.run) if d.score >= min_score and (classes is None or d.cls in classes)]


def person(x, y, h=80.0, score=0.8):
    return Detection("person", score, (x - h / 4, y - h / 2, x + h / 4, y + h / 2))


def run_people(script, seconds=6.0):
    model = PeopleModel(ScriptedModel(script), PeopleModelConfig(), min_people=5)
    out = []
    for i in range(int(seconds * 30)):
        out += [(i / 30, s) for s in model.update(FRAME, i / 30, 2.0, np.eye(3))]
    return out


def test_standing_group_held_is_a_crowd():
    group = [person(400 + 40 * k, 300 + 10 * (k % 2)) for k in range(6)]
    hits = run_people(lambda run: group)
    assert hits and hits[0][1].kind == "crowd"
    assert 3.9 <= hits[0][0] <= 4.7  # 2 s to know they stand, then held 2 s


def test_walkers_and_riders_are_not_a_crowd():
    def walkers(run):  # six people walking side by side at ~1 body height a second
        return [person(200 + 40 * k + 28 * run, 300) for k in range(6)]

    assert run_people(walkers) == []

    def riders(run):  # a queue of motorbikes at a light: people on bikes stand still too
        out = []
        for k in range(6):
            out.append(person(300 + 60 * k, 300))
            out.append(Detection("motorbike", 0.7, (300 + 60 * k - 25, 290, 300 + 60 * k + 25, 350)))
        return out

    assert run_people(riders) == []


def test_too_few_standing_people_are_not_a_crowd():
    assert run_people(lambda run: [person(400 + 40 * k, 300) for k in range(4)]) == []


def run_fire(script, seconds=6.0, flames=()):
    model = FireSmokeModel(ScriptedModel(script), FireModelConfig())
    out = []
    for i in range(int(seconds * 30)):
        out += [(i / 30, s) for s in model.update(FRAME, i / 30, list(flames), 2.0)]
    return out


def test_smoke_held_over_model_frames_raises_fire():
    hits = run_fire(lambda run: [Detection("smoke", 0.7, (100, 100, 300, 250))])
    assert hits and hits[0][0] <= 1.5 and hits[0][1].kind == "fire"


def test_one_frame_of_smoke_is_not_an_alarm():
    assert run_fire(lambda run: [Detection("smoke", 0.9, (100, 100, 300, 250))] if run == 2 else []) == []


def test_fire_class_alone_needs_support():
    """The fire class fires on a sunlit forest: alone it is no alarm; with a flickering flame
    (the colour detector's cue) inside its box, or with smoke about, it is."""
    fire = [Detection("fire", 0.72, (500, 400, 600, 480))]
    assert run_fire(lambda run: fire) == []
    assert run_fire(lambda run: fire, flames=[(550.0, 440.0)])
    assert run_fire(lambda run: fire + [Detection("smoke", 0.35, (450, 200, 700, 400))])


def test_tiles_put_boxes_back_in_frame_pixels():
    """With tiles (small people from high up) each tile's boxes come back where they are in the frame."""
    model = PeopleModel(ScriptedModel(lambda run: [person(20, 40, h=40)]),
                        PeopleModelConfig(tiles=2), min_people=5)
    dets = model._detect(FRAME)
    assert sorted(d.centre for d in dets) == [(20, 40), (20, 40 + 324), (20 + 576, 40), (20 + 576, 40 + 324)]
