"""A run folder's one owner (avaudit.runs): what a run writes, and reading it back from its record."""
import json

import pytest
import yaml
from cli_helpers import cli

import avaudit
from avaudit.options import THRESHOLDS
from avaudit.runs import BiasSummary, read_run


def fake_bias_run(folder, **settings):
    """A bias run's record and tables, as retarget --from reads them."""
    folder.mkdir(parents=True)
    (folder / "bias_run.yaml").write_text(yaml.safe_dump({"command": "bias", "data": str(folder / "data"),
                                                          "root": str(folder), **settings}))
    (folder / "bias_videos.csv").write_text("video_id,label,layer,group\nv,dog,audio,audio\n")
    (folder / "bias_categories.csv").write_text("category,layer,group\ndog,audio,audio\n")
    return folder / "bias_run.yaml"


def test_retarget_never_replaces_a_bias_run_of_other_data(planted, tiny_model, tmp_path):
    record = fake_bias_run(tmp_path / "X" / "bias")
    before = record.read_bytes()
    with pytest.raises(avaudit.UsageError, match=r"X/bias holds the bias run of other DATA .*/X/bias/data\); "
                                                 r"retarget writes the bias run of .* there"):
        avaudit.retarget(planted, keep=["audio"], out=tmp_path / "X" / "kav.csv", model=tiny_model, device="cpu",
                         workers=0)
    assert record.read_bytes() == before and not (tmp_path / "X" / "kav.csv").exists()
    record.write_bytes(b"command: bias\ndata: \xff\n")  # a record no one can read may be anyone's
    with pytest.raises(avaudit.UsageError, match="holds a bias run avaudit cannot read"):
        avaudit.retarget(planted, keep=["audio"], out=tmp_path / "X" / "kav.csv", model=tiny_model)



def test_retarget_never_writes_its_bias_run_over_files_of_a_folder_that_holds_no_run(planted, tiny_model, tmp_path):
    """A user's `bias/bias_videos.csv` with no run record beside it is someone's file, not a run to rewrite."""
    mine = tmp_path / "Y" / "bias" / "bias_videos.csv"
    mine.parent.mkdir(parents=True)
    mine.write_text("my notes\n")
    with pytest.raises(avaudit.UsageError, match=r"Y/bias holds bias_videos.csv but no bias run record"):
        avaudit.retarget(planted, keep=["audio"], out=tmp_path / "Y" / "kav.csv", model=tiny_model, device="cpu",
                         workers=0)
    assert mine.read_text() == "my notes\n" and not (tmp_path / "Y" / "kav.csv").exists()


def test_the_api_refuses_a_data_or_out_that_is_not_a_path(tmp_path):
    for call in (lambda: avaudit.bias(123), lambda: avaudit.predict([str(tmp_path)]),
                 lambda: avaudit.missing_labels(tmp_path, out=123), lambda: avaudit.retarget(123, keep=["audio"])):
        with pytest.raises(avaudit.ParameterError, match=r"(data|out) must be a path \(str or Path\), not "):
            call()


def test_retarget_says_where_it_wrote_its_bias_run_and_report_finds_it_by_its_record(planted, tiny_model, tmp_path):
    out = tmp_path / "X" / "kav.csv"
    run = avaudit.retarget(planted, keep=["audio", "audiovisual"], out=out, model=tiny_model, device="cpu",
                           workers=0)
    assert f"the bias run of DATA written to {tmp_path / 'X' / 'bias'}" in run.notes[-1]
    record = read_run(tmp_path / "X", "retarget")
    assert record.settings["summary"] == "kav.csv.json" and record.settings["subset"] == str(out)
    again = avaudit.retarget(planted, keep=["audio"], out=out, model=tiny_model, device="cpu", workers=0)
    assert again.summary.n_videos <= run.summary.n_videos  # the same DATA's bias run is rewritten, not refused
    result = cli("report", str(tmp_path / "X"))
    assert result.exit_code == 0, result.output
    page = (tmp_path / "X" / "report.html").read_text()
    assert "no retarget run found" not in page and f"kept {again.summary.n_videos:,} of" in page
    assert 'href="kav.csv.json"' in page


def test_a_tampered_bias_record_is_one_line_in_retarget_and_report(tmp_path):
    record = fake_bias_run(tmp_path / "bias", classes=["a", "b"])
    result = cli("retarget", "--keep", "audio", "--from", str(tmp_path / "bias"))
    assert result.exit_code == 2 and result.output == (
        f"error: {record}: `classes` must be a path, not list \"['a', 'b']\"; rerun `avaudit bias`\n")
    result = cli("report", str(tmp_path))
    assert result.exit_code == 0, result.output
    record.write_bytes(b"command: bias\ndata: caf\xe9\nroot: /\n")
    result = cli("retarget", "--keep", "audio", "--from", str(tmp_path / "bias"))
    assert result.exit_code == 2 and result.output == f"error: {record}: not readable YAML (not UTF-8 text)\n"
    result = cli("report", str(tmp_path))
    assert result.exit_code == 2 and result.output.startswith(f"error: {record}: not the record of an avaudit run")


def test_records_name_absolute_paths_so_retarget_from_works_from_another_folder(planted, tiny_model, tmp_path,
                                                                               monkeypatch):
    monkeypatch.chdir(planted.parent)
    avaudit.bias(planted.name, out=tmp_path / "run", model=tiny_model, device="cpu", workers=0)
    settings = read_run(tmp_path / "run", "bias").settings
    assert settings["data"] == str(planted) and settings["root"] == str(planted)
    assert settings["model"] == str(tiny_model)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    every_group = ["audio", "audiovisual", "visual", "redundant", "unclear"]  # a tiny model's calls are unclear
    subset = avaudit.retarget(keep=every_group, bias_run=tmp_path / "run", out=tmp_path / "subset.csv")
    assert subset.summary.n_videos == subset.n_rows > 0


def test_the_bias_summary_is_a_typed_record_written_as_before(planted, tiny_model, tmp_path):
    run = avaudit.bias(planted, out=tmp_path, model=tiny_model, device="cpu", workers=0)
    assert isinstance(run.summary, BiasSummary) and run.summary.truth is None
    written = json.loads((tmp_path / "bias_summary.json").read_text())
    assert list(written) == sorted(["rule", "fraction", "type_margin", "min_support", "video_noise",
                                    "categories_per_layer", "categories_per_group", "total", "n_videos",
                                    "layer_statistics", "n_rows", "n_skipped", "confidence", "n_flagged",
                                    "flagged_vote"])
    assert (written["min_support"], written["video_noise"]) == (THRESHOLDS.min_support, THRESHOLDS.video_noise)
    assert "unclear" in written["categories_per_layer"] and "unclear" in written["categories_per_group"]
    assert written == run.summary.document()


@pytest.mark.parametrize("damage, kind", [('{"x": 1}', "KeyError"), ("not json", "JSONDecodeError"),
                                         ("[1, 2]", "TypeError")])
def test_a_damaged_bias_summary_is_one_line_in_report(tmp_path, damage, kind):
    """report crashed with a KeyError, JSONDecodeError or TypeError on a run's edited summary (adversarial pass)."""
    fake_bias_run(tmp_path / "R" / "bias")
    (tmp_path / "R" / "bias" / "bias_summary.json").write_text(damage)
    result = cli("report", tmp_path / "R")
    assert result.exit_code == 2, result.output
    assert " ".join(result.output.split()) == (f"error: the bias run in {tmp_path / 'R' / 'bias'}: a table or summary "
                                               f"is not as avaudit wrote it ({kind}); "
                                               f"run that command again")
    assert not (tmp_path / "R" / "report.html").exists()
