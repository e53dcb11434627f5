"""`patrol eval`: alerts scored against a labels file (true / false / missed, time to first
detection, false alerts per hour), on synthetic clips rendered here."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import yaml

import patrol
from common.values import CameraModel
from sim.camera.scenarios import fires, write_synthetic_video
from vision.config import FireConfig
from vision.errors import VisionError
from vision.eval import SHEET_TILES, Alert, LabelSpan, load_labels, score_clip, write_false_alert_sheets


def span(kind, start_s, end_s, line=1):
    return LabelSpan("clip.mp4", kind, start_s, end_s, line)


def alert(kind, t_s):
    return Alert(f"inc-{kind}-{t_s}", kind, t_s, 0.9, None, end_s=t_s + 2.0)  # ended 2 s later


def test_alerts_are_true_only_inside_a_labelled_span_of_their_kind():
    spans = [span("none", 0, 60, 2), span("fire", 10, 20, 3), span("smoke", 30, 40, 4), span("crowd", 50, 55, 5)]
    alerts = [alert("fire", 9.5),    # half a second before the flames: within tolerance
              alert("fire", 25.0),   # between the spans: nothing burns
              alert("fire", 35.0),   # under the smoke plume: the same fire
              alert("crowd", 5.0)]   # in the calm part
    scores, missed = score_clip(spans, alerts, duration_s=60.0, tolerance_s=1.0)

    assert [a.true for a in alerts] == [True, False, True, False]
    assert [a.span_line for a in alerts] == [3, None, 4, None]
    fire, smoke, crowd = scores["fire"], scores["smoke"], scores["crowd"]
    assert (fire.alerts, fire.true, fire.false) == (3, 2, 1)
    assert (fire.labelled, fire.found, fire.missed, fire.first_detection_s) == (1, 1, 0, [0.0])
    assert (smoke.alerts, smoke.labelled, smoke.found, smoke.first_detection_s) == (0, 1, 1, [5.0])
    assert (crowd.alerts, crowd.false, crowd.labelled, crowd.missed) == (1, 1, 1, 1)
    assert missed == [{"kind": "crowd", "start_s": 50, "end_s": 55, "line": 5}]
    assert fire.false_per_hour == pytest.approx(60.0)


def test_a_fire_reported_from_its_smoke_and_still_open_finds_the_flames_labelled_later():
    spans = [span("none", 0, 2.5, 2), span("smoke", 2.5, 44.5, 3), span("fire", 9.5, 44.5, 4)]
    smoke_first = Alert("inc-1", "fire", 3.5, 0.9, None, end_s=46.0)
    false_at_start = Alert("inc-0", "fire", 0.5, 0.9, None, end_s=46.0)  # open all along, but false
    scores, missed = score_clip(spans, [false_at_start, smoke_first], duration_s=48.0, tolerance_s=1.0)
    assert (scores["fire"].true, scores["fire"].false) == (1, 1)
    assert scores["smoke"].first_detection_s == [1.0] and scores["fire"].first_detection_s == [0.0]
    assert missed == []
    ended = Alert("inc-2", "fire", 3.5, 0.9, None, end_s=6.0)  # over before the flames showed
    scores, missed = score_clip(spans, [ended], duration_s=48.0, tolerance_s=1.0)
    assert [m["kind"] for m in missed] == ["fire"]


def test_an_alert_after_its_span_ended_is_false_and_the_span_missed():
    scores, missed = score_clip([span("fire", 0, 5)], [alert("fire", 6.5)], duration_s=10.0, tolerance_s=1.0)
    assert (scores["fire"].true, scores["fire"].false, scores["fire"].missed) == (0, 1, 1)


@pytest.mark.parametrize("row, complaint", [
    ("a.mp4\tfire\t0", "expected file<TAB>kind<TAB>start_s<TAB>end_s"),
    ("a.mp4  fire  0  5", "expected file<TAB>kind<TAB>start_s<TAB>end_s"),   # spaces, not tabs
    ("a.mp4\tfyre\t0\t5", "unknown kind 'fyre'"),
    ("a.mp4\tfire\tzero\t5", "must be seconds"),
    ("a.mp4\tfire\t9\t5", "is not 0 <= start_s <= end_s"),
    ("\tfire\t0\t5", "no file name"),
])
def test_a_bad_labels_row_is_refused_naming_its_line(tmp_path, row, complaint):
    labels = tmp_path / "labels.tsv"
    labels.write_text("# file\tkind\tstart_s\tend_s\n\nok.mp4\tnone\t0\t5\tcalm\n" + row + "\n")
    with pytest.raises(VisionError, match=f"line 4: .*{complaint}"):
        load_labels(labels)


def test_patrol_eval_scores_labelled_synthetic_clips(tmp_path, capsys):
    """The same fire clip twice: once labelled with its fire (and a crowd that is not there),
    once labelled calm. Its alerts are true in the one and false in the other."""
    clips = tmp_path / "clips"
    files = write_synthetic_video(fires(), clips, CameraModel(640, 360, 82.0), fps=15, duration_s=6)
    assert files["telemetry"].name == "fires.poses.jsonl"  # beside the clip: eval gives the pipeline a pose
    shutil.copy(files["video"], clips / "fires_calm.mp4")    # no telemetry beside it: runs without a pose
    labels = tmp_path / "labels.tsv"
    labels.write_text("# file\tkind\tstart_s\tend_s\tview\tnote\n"
                      "fires.mp4\tfire\t2.5\t6\tdrone_nadir\tfire-0 in view from ~3 s\n"
                      "fires.mp4\tcrowd\t0\t6\tdrone_nadir\tnot there: must be counted missed\n"
                      "fires_calm.mp4\tnone\t0\t6\tdrone_nadir\tcalm (deliberately wrong)\n"
                      "broken.mp4\tnone\t0\t6\tdrone_nadir\tcut off\n")
    (clips / "broken.mp4").write_bytes(files["video"].read_bytes()[:3000])
    # The synthetic camera draws its flames in the very colours the colour/flicker detector
    # looks for: trusted on its own there, through the config eval hands to the pipeline.
    fire = {"window_frames": 4}
    if "colour_alone" in FireConfig.model_fields:
        fire["colour_alone"] = True
    config = tmp_path / "vision.yaml"
    config.write_text(yaml.safe_dump({"fire": fire}))
    out = tmp_path / "out"

    # The broken clip is named and fails the run; the others are scored all the same.
    assert patrol.main(["eval", str(clips), str(labels), "--out", str(out), "--config", str(config)]) == 1

    result = json.loads((out / "eval.json").read_text())
    labelled, calm, broken = result["clips"]
    assert list(result["errors"]) == ["broken.mp4"] and "broken.mp4" in broken["error"]
    assert (labelled["clip"], labelled["pose"], calm["clip"], calm["pose"]) == ("fires.mp4", True, "fires_calm.mp4", False)
    fire = labelled["classes"]["fire"]
    assert fire["alerts"] >= 1 and fire["false"] == 0 and fire["found"] == 1
    assert 0.0 <= fire["first_detection_s"][0] <= 3.0
    assert labelled["classes"]["crowd"]["missed"] == 1 and labelled["missed"][0]["line"] == 3
    assert calm["classes"]["fire"]["false"] == calm["classes"]["fire"]["alerts"] == fire["alerts"]
    assert result["totals"]["calm_clips_with_alerts"] == 1
    assert calm["classes"]["fire"]["false_per_hour"] == pytest.approx(fire["alerts"] * 3600 / 6.0, rel=0.01)
    assert labelled["frames"] == 90 and labelled["frames_per_s"] > 0
    for a in calm["alerts"]:  # each false alert keeps its snapshot, and the contact sheet shows them
        assert (out / a["snapshot"]).is_file()
    sheet = cv2.imread(str(out / "false_alerts.png"))
    assert sheet.shape[1] == 3 * 320
    captured = capsys.readouterr()
    assert "clip 1/3: fires.mp4" in captured.err and "clip 2/3: fires_calm.mp4" in captured.err
    assert "patrol eval: broken.mp4: " in captured.err
    assert "fires_calm.mp4" in captured.out and "calm clips with an alert" in captured.out


def test_patrol_eval_names_the_bad_labels_line(tmp_path, capsys):
    (tmp_path / "a.mp4").write_bytes(b"")
    labels = tmp_path / "labels.tsv"
    labels.write_text("a.mp4\tfire\t0\t5\na.mp4\tfire\t5\n")
    assert patrol.main(["eval", str(tmp_path), str(labels)]) == 1
    assert f"labels file {labels} line 2" in capsys.readouterr().err


def test_many_false_alerts_are_shown_on_pages_of_contact_sheets(tmp_path):
    jpeg = cv2.imencode(".jpg", np.full((90, 160, 3), 128, np.uint8))[1].tobytes()
    tiles = {f"inc-{i}": (jpeg, f"FALSE fire t={i}") for i in range(SHEET_TILES + 1)}
    assert write_false_alert_sheets(tiles, tmp_path) == ["false_alerts.png", "false_alerts-2.png"]
    first, second = (cv2.imread(str(tmp_path / n)) for n in ("false_alerts.png", "false_alerts-2.png"))
    assert first.shape[0] == (SHEET_TILES // 3) * second.shape[0]  # a full page of rows, then one row
