"""Seeing the audit: localize on planted clips, and the HTML report rendered in headless Chromium."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import decord
import pandas as pd
from typer.testing import CliRunner

from avaudit.cli import app
from avaudit.commands import DEFAULT_MODEL
from avaudit.localize import localize
from avaudit.report import SECTIONS

runner = CliRunner()
SAMPLES = Path(__file__).resolve().parent.parent / "sample_videos"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_localize_writes_pictures_a_video_with_sound_and_a_timeline(tmp_path):
    clip = SAMPLES / "instant_tone690_yellow_triangle" / "instant_tone690_yellow_triangle_000.mp4"
    result = runner.invoke(app, ["localize", str(clip), "--out", str(tmp_path), "--timeline"])
    assert result.exit_code == 0, result.output
    for name in ("localize.png", "timeline.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    video = decord.VideoReader(str(tmp_path / "localize.mp4"))
    assert len(video) == 100 and video[0].shape[0] >= 160
    assert decord.AudioReader(str(tmp_path / "localize.mp4"), sample_rate=16000, mono=True).shape[1] >= 159000
    info = json.loads((tmp_path / "localize.json").read_text())
    assert len(info["response_per_step"]) == 100 and set(info["per_second_confidence"]) == {
        "continuous", "instant", "onset", "visual", "audio"}
    assert all(len(v) == 10 for v in info["per_second_confidence"].values())


def test_heat_peaks_at_the_planted_instant_events_with_the_shipped_model(tmp_path):
    clips = pd.read_csv(SAMPLES / "clips.csv")
    instant = clips[clips["modality"] == "instant"].groupby("label").head(5)
    hits = []
    for row in instant.itertuples(index=False):
        peak = localize(SAMPLES / row.path, model=DEFAULT_MODEL, out=tmp_path)["peak_time"]
        hits.append(abs(peak - float(str(row.event_times).split(";")[0])) <= 0.5)
    assert len(hits) == 20 and sum(hits) >= 16  # at least 80% within 0.5 s


def test_missing_video_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["localize", str(tmp_path / "none.mp4"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "none.mp4: no such file (missing file)" in result.output


def test_the_report_of_a_real_audit_renders_in_chromium(tmp_path, monkeypatch):
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed (.ci/run installs it)"
    monkeypatch.chdir(tmp_path)
    for command in (["bias"], ["missing-labels"], ["predict"]):
        result = runner.invoke(app, [*command, str(SAMPLES), "--device", "cpu"])
        assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["retarget", "--keep", "audiovisual", "--compare", "ks31"]).exit_code == 0
    result = runner.invoke(app, ["report", "avaudit-out"])
    assert result.exit_code == 0, result.output
    page = tmp_path / "avaudit-out" / "report.html"
    dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    total = int(re.search(r'data-images-total="(\d+)"', dom).group(1))
    loaded = int(re.search(r'data-images-loaded="(\d+)"', dom).group(1))
    assert total >= 3 and loaded == total  # the Table 3 chart and the missing-label strips, all decoded
    for name in SECTIONS:
        assert f'<section id="{name}">' in dom, name
    assert "no bias run found" not in dom and "no missing-labels run found" not in dom
    assert "no retarget run found" not in dom and "no predict run found" not in dom


def test_a_tampered_run_record_is_one_line_naming_it(tmp_path):
    (tmp_path / "bias").mkdir()
    record = tmp_path / "bias" / "bias_run.yaml"
    not_bias = "not the record of a bias run (needs command: bias, data and root)"
    for text, why in (("- just\n- a list\n", not_bias), ("command: [1, 2]\n", not_bias),
                      ("!!python/object/apply:os.system ['echo pwned']\n", "not readable YAML")):
        record.write_text(text)
        result = runner.invoke(app, ["report", str(tmp_path)])
        assert result.exit_code == 2, result.output
        assert result.output == (f"error: {record}: not the record of an avaudit run (a mapping with its command); "
                                 f"rerun that command or remove the file\n")
        result = runner.invoke(app, ["retarget", "--keep", "audio", "--from", str(tmp_path / "bias")])
        assert result.exit_code == 2 and result.output == f"error: {record}: {why}\n"
    record.write_text(f"command: bias\ndata: {tmp_path}\nroot: {tmp_path}\n")
    (tmp_path / "bias" / "bias_videos.csv").write_text("video_id,label\nv,dog\n")
    (tmp_path / "bias" / "bias_categories.csv").write_text("category,layer,group\ndog,audio,audio\n")
    result = runner.invoke(app, ["retarget", "--keep", "audio", "--from", str(tmp_path / "bias")])
    assert result.exit_code == 2 and result.output == (
        f"error: {tmp_path}/bias/bias_videos.csv: not a bias table (needs columns video_id, label, layer, group); "
        f"rerun `avaudit bias`\n")
