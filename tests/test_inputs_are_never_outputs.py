"""No command writes over a file it reads: DATA, its media, the model, the class index, the truth files."""
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import cli, invoke

from avaudit.errors import UsageError
from avaudit.outputs import check_writes

MANIFESTS = Path(__file__).parent / "data" / "manifests"



def test_every_input_is_refused_as_an_output_through_links_dots_and_relative_paths(tmp_path, monkeypatch):
    data = tmp_path / "list.csv"
    data.write_text("path,label\n")
    index = tmp_path / "in" / "classes.csv"
    index.parent.mkdir()
    index.write_text("index,mid,display_name\n")
    (tmp_path / "link.csv").symlink_to(index)
    monkeypatch.chdir(tmp_path / "in")

    def refused(path):
        with pytest.raises(UsageError) as error:
            check_writes([tmp_path / "out" / "ok.csv", path], data=data, inputs={index: "the class index"})
        return str(error.value)

    for path in (index, tmp_path / "link.csv", tmp_path / "out" / ".." / "in" / "classes.csv", Path("classes.csv"),
                 Path("../in/./classes.csv")):
        assert refused(path) == (f"{path} is the class index ({index}): refusing to overwrite an input; "
                                 f"choose another output path")
    check_writes([tmp_path / "out" / "ok.csv", tmp_path / "in" / "new.npz"], data=data, inputs={index: "x"})


def test_predict_refuses_to_export_over_the_class_index_it_reads(tiny_model, tmp_path):
    segments = Path(shutil.copyfile(MANIFESTS / "audioset_eval_segments_head40.csv", tmp_path / "seg.csv"))
    named = tmp_path / "names" / "classes.csv"
    named.parent.mkdir()
    shutil.copyfile(MANIFESTS / "class_labels_indices.csv", named)
    beside = Path(shutil.copyfile(MANIFESTS / "class_labels_indices.csv", tmp_path / "class_labels_indices.csv"))
    before = named.read_bytes()
    for given, target in ((["--classes", named], named), ([], beside)):  # named, or found beside DATA
        result = invoke("predict", segments, *given, "--model", tiny_model, "--out", tmp_path / "p",
                        "--export-probs", target)
        assert result.exit_code == 2, result.output
        assert " ".join(result.output.split()) == (f"error: {target} is the class index ({target}): refusing to "
                                                   f"overwrite an input; choose another output path")
        assert target.read_bytes() == before and not (tmp_path / "p").exists()


def test_bias_refuses_to_write_its_tables_over_the_truth_files_it_reads(planted, tiny_model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    events = "filename\tonset\toffset\tevent_labels\nv_0_10\t0\t10\tDog\n"
    audio, visual = out / "bias_truth.csv", out / "bias_truth_categories.csv"
    audio.write_text(events)
    os.link(audio, tmp_path / "hard_link.csv")
    visual.write_text(events)
    for truth_audio, message in ((audio, f"{out}/bias_truth.csv is the --truth-audio events ({audio})"),
                                 (tmp_path / "hard_link.csv",
                                  f"{out}/bias_truth.csv is the --truth-audio events ({tmp_path}/hard_link.csv)"),
                                 (tmp_path / "elsewhere.csv", f"{out}/bias_truth_categories.csv is the --truth-visual events "
                                                              f"({visual})")):
        if not truth_audio.exists():
            truth_audio.write_text(events)
        result = invoke("bias", planted, "--model", tiny_model, "--out", out, "--truth-audio", truth_audio,
                        "--truth-visual", visual)
        assert result.exit_code == 2, result.output
        assert " ".join(result.output.split()) == (f"error: {message}: refusing to overwrite an input; "
                                                   f"choose another output path")
    assert audio.read_text() == visual.read_text() == events
    assert sorted(p.name for p in out.iterdir()) == ["bias_truth.csv", "bias_truth_categories.csv"]


def test_retarget_from_a_run_refuses_to_write_the_subset_over_the_tables_it_reads(tmp_path):
    data = tmp_path / "list.csv"
    data.write_text("path,label\na.mp4,dog\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "bias_run.yaml").write_text(f"command: bias\ndata: {data}\nroot: {tmp_path}\n")
    pd.DataFrame({"video_id": ["a"], "label": ["dog"], "layer": ["audio"], "group": ["audio"]}).to_csv(
        run / "bias_videos.csv", index=False)
    pd.DataFrame({"category": ["dog"], "layer": ["audio"], "group": ["audio"]}).to_csv(
        run / "bias_categories.csv", index=False)
    before = (run / "bias_videos.csv").read_bytes()
    result = cli("retarget", "--from", str(run), "--keep", "audio", "--out", str(run / "bias_videos.csv"))
    assert result.exit_code == 2, result.output
    assert " ".join(result.output.split()) == (f"error: {run}/bias_videos.csv is a table of the bias run read "
                                               f"({run}/bias_videos.csv): refusing to overwrite an input; "
                                               f"choose another output path")
    assert (run / "bias_videos.csv").read_bytes() == before
