"""Seeing the audit: localize on planted clips, and the HTML report rendered in headless Chromium."""
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import unquote

import decord
import pandas as pd
import pytest
from bigaudit import write_big_audit
from cli_helpers import cli

from avaudit.localize import localize
from avaudit.options import DEFAULT_MODEL
from avaudit.report import MAX_ROWS, SECTIONS, build_report
from avaudit.vocab import Skip

SAMPLES = Path(__file__).resolve().parent.parent / "sample_videos"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_localize_writes_pictures_a_video_with_sound_and_a_timeline(tmp_path):
    clip = SAMPLES / "instant_tone690_yellow_triangle" / "instant_tone690_yellow_triangle_000.mp4"
    result = cli("localize", clip, "--out", tmp_path, "--timeline")
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


@pytest.mark.slow
def test_heat_peaks_at_the_planted_instant_events_with_the_shipped_model(tmp_path):
    clips = pd.read_csv(SAMPLES / "clips.csv")
    instant = clips[clips["modality"] == "instant"].groupby("label").head(5)
    hits = []
    for row in instant.itertuples(index=False):
        peak = localize(SAMPLES / row.path, model=DEFAULT_MODEL, out=tmp_path)["peak_time"]
        hits.append(abs(peak - float(str(row.event_times).split(";")[0])) <= 0.5)
    assert len(hits) == 20 and sum(hits) >= 16  # at least 80% within 0.5 s


def test_missing_video_is_a_clear_error(tmp_path):
    result = cli("localize", tmp_path / "none.mp4", "--out", tmp_path)
    assert result.exit_code == 2
    assert " ".join(result.output.split()) == f"error: {tmp_path / 'none.mp4'}: no such file (missing file)"


def chromium_path() -> str:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed (.ci/run installs it)"
    return chromium


def dump_dom(page: Path, profile: Path, *, budget_ms: int = 10000) -> str:
    return subprocess.run([chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                           f"--virtual-time-budget={budget_ms}", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120).stdout


def video_sources(page: Path) -> list[Path]:
    """The files the page's players and clip links (a click makes them players) play, in page order,
    resolved from their src or href as the browser would."""
    found = re.findall(r'<video controls preload="none" src="([^"]+)"|<a class="clip" href="([^"]+)"', page.read_text())
    return [(page.parent / unquote(src or link)).resolve() for src, link in found]


@pytest.mark.slow
def test_the_report_of_a_real_audit_renders_in_chromium(tmp_path, monkeypatch):
    chromium = chromium_path()
    monkeypatch.chdir(tmp_path)
    for command in (["bias"], ["missing-labels"], ["predict"]):
        result = cli(*command, SAMPLES, "--device", "cpu")
        assert result.exit_code == 0, result.output
    assert cli("retarget", "--keep", "audiovisual", "--compare", "ks31").exit_code == 0
    result = cli("report", "avaudit-out")
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
    # Every flagged clip plays from its own file: the top candidates (up to 10) in players, the 2 examples of
    # each of the 16 categories behind links that a click turns into players.
    n_candidates = min(10, len(pd.read_csv(tmp_path / "avaudit-out" / "missing-labels" / "missing_labels.csv")))
    sources = video_sources(page)
    assert n_candidates >= 8  # the planted set's 8 missing labels at least
    assert len(sources) == 2 * 16 + n_candidates
    assert int(re.search(r'data-videos="(\d+)"', dom).group(1)) == n_candidates
    assert all(s.is_file() and s.is_relative_to(SAMPLES.resolve()) for s in sources)
    # Click the first example: Chromium loads it in a player and decodes picture and sound (its decoded-byte
    # counters; a file without a sound track gives 0 audio bytes, the page's own muting does not).
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", (
        "<script>document.addEventListener('DOMContentLoaded', () => { document.querySelector('a.clip').click();"
        " const v = document.querySelector('#categories video'); v.muted = true; v.play();"
        " v.addEventListener('loadeddata', () => { document.body.dataset.state = `loaded ${v.duration} sound"
        " ${v.webkitAudioDecodedByteCount > 0} picture ${v.webkitVideoDecodedByteCount > 0}`; }); });"
        "</script></body>")))
    assert 'data-state="loaded 10 sound true picture true"' in dump_dom(probe, tmp_path / "probe-profile")


def small_audit(tmp_path, **sizes):
    out = write_big_audit(tmp_path / "out", **sizes)
    page = build_report(out)
    return out, page, page.read_text()


def test_numeric_category_names_stay_names(tmp_path):
    out, page, text = small_audit(tmp_path, n_videos=300, n_skipped=3, n_categories=5)
    assert "<td>007</td>" in text and "<td>1984</td>" in text  # not 7 and 1984.0
    assert text.count("<section id=") == len(SECTIONS)


def test_tables_are_capped_with_their_csv_linked_and_skipped_rows_counted(tmp_path):
    out, page, text = small_audit(tmp_path, n_videos=3000, n_skipped=2500, n_categories=30)
    assert MAX_ROWS == 1000
    for name in ("missing-labels/missing_labels.csv", "predict/predictions.csv"):
        assert f'<p class="muted">the first 1,000 of 3,000 rows; the whole table: <a href="{name}">' in text, name
    assert '<p class="muted">30 rows; the whole table: <a href="bias/bias_categories.csv">' in text
    skipped = text.split('<section id="skipped">')[1]
    assert skipped.startswith('<h2>Skipped videos</h2><p>2,500 skipped rows; every one, with its reason, in '
                              '<a href="bias/bias_skipped.csv">bias_skipped.csv</a></p>')
    counts = re.findall(r"<tr>\s*<td>bias</td>\s*<td>([^<]*)</td>\s*<td>(\d+)</td>\s*</tr>", skipped)
    expected = pd.read_csv(out / "bias" / "bias_skipped.csv")["reason"].value_counts().sort_index()
    assert counts == [(reason, str(n)) for reason, n in expected.items()] and len(counts) == len(Skip)
    assert skipped.count("<tr>") == len(expected) + 20  # body rows: the counts, then the first 20


def test_each_category_s_examples_play_from_their_own_files(tmp_path):
    out, page, text = small_audit(tmp_path, n_videos=300, n_skipped=0, n_categories=5)
    videos = pd.read_csv(out / "bias" / "bias_videos.csv", dtype=str)
    sources = video_sources(page)
    assert len(sources) == 2 * 5 + 10  # 2 examples of each category, the top 10 missing-label candidates
    top = [Path(p).resolve() for p in pd.read_csv(out / "missing-labels" / "missing_labels.csv",
                                                  dtype=str)["path"].head(10)]
    assert sources[10:] == top  # after the categories' examples, in page order
    assert set(sources[:10]) <= {Path(p).resolve() for p in videos["path"]}
    assert text.count('<a class="clip" href=') == 10 and text.count("<video controls") == 10
    assert 'src="../../' in text and "http" not in text.split("<body>")[1].split("<script>")[0]


@pytest.mark.slow
def test_a_200000_row_audit_gives_a_small_page_chromium_draws_in_under_10_s(tmp_path):
    out = write_big_audit(tmp_path / "out", n_videos=200_000, n_skipped=200_798)
    page = build_report(out)
    assert page.stat().st_size < 5 * 2**20
    started = time.perf_counter()
    subprocess.run([chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                    "--window-size=1280,3000", f"--screenshot={tmp_path / 'page.png'}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    seconds = time.perf_counter() - started
    assert (tmp_path / "page.png").stat().st_size > 10_000 and seconds < 10, seconds
    dom = dump_dom(page, tmp_path / "profile2")
    for name in SECTIONS:
        assert f'<section id="{name}">' in dom, name
    assert "page 1 of 40 (1000 rows)" in dom and "200,798 skipped rows" in dom


def test_a_tampered_run_record_is_one_line_naming_it(tmp_path):
    (tmp_path / "bias").mkdir()
    record = tmp_path / "bias" / "bias_run.yaml"
    not_bias = "not the record of a bias run (needs command: bias, data and root)"
    for text, why in (("- just\n- a list\n", not_bias), ("command: [1, 2]\n", not_bias),
                      ("!!python/object/apply:os.system ['echo pwned']\n", "not readable YAML")):
        record.write_text(text)
        result = cli("report", tmp_path)
        assert result.exit_code == 2, result.output
        assert result.output == (f"error: {record}: not the record of an avaudit run (a mapping with its command); "
                                 f"rerun that command or remove the file\n")
        result = cli("retarget", "--keep", "audio", "--from", tmp_path / "bias")
        assert result.exit_code == 2 and result.output == f"error: {record}: {why}\n"
    record.write_text(f"command: bias\ndata: {tmp_path}\nroot: {tmp_path}\n")
    (tmp_path / "bias" / "bias_videos.csv").write_text("video_id,label\nv,dog\n")
    (tmp_path / "bias" / "bias_categories.csv").write_text("category,layer,group\ndog,audio,audio\n")
    result = cli("retarget", "--keep", "audio", "--from", tmp_path / "bias")
    assert result.exit_code == 2 and result.output == (
        f"error: {tmp_path}/bias/bias_videos.csv: not a bias table (needs columns video_id, label, layer, group); "
        f"rerun `avaudit bias`\n")


def test_the_page_inlines_its_script_and_style_from_package_data(tmp_path):
    from avaudit.report import ASSETS

    out, page, text = small_audit(tmp_path, n_videos=30, n_skipped=0, n_categories=3)
    assert (ASSETS / "report.js").read_text() in text and (ASSETS / "report.css").read_text() in text
    assert "tr:nth-child(n+26){display:none}" in text  # the one rule that depends on the page size
