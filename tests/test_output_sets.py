"""Output sets: written together or not at all, per-command names, and no output path on an input."""
import errno
import os
import shutil
import socket
from pathlib import Path

import pandas as pd
import pytest
import yaml
from cli_helpers import cli, invoke

from avaudit.errors import UsageError
from avaudit.outputs import OutputError, check_writes, clean_stale_temps, output_set, write_csv, write_yaml

HOST = socket.gethostname()


def dead_pid() -> int:
    with open("/proc/sys/kernel/pid_max") as handle:
        return int(handle.read()) + 1  # above pid_max: never a running process


def old_set(folder):
    with output_set(folder, record="x_run.yaml") as staged:
        write_csv(pd.DataFrame({"a": [1]}), staged / "x_table.csv")
        write_yaml({"command": "x", "n": 1}, staged / "x_run.yaml")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_set_that_fails_part_way_leaves_the_previous_set_whole(tmp_path):
    before = old_set(tmp_path)
    with pytest.raises(OutputError) as error:
        with output_set(tmp_path, record="x_run.yaml") as staged:
            write_csv(pd.DataFrame({"a": [2]}), staged / "x_table.csv")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert str(error.value) == f"{tmp_path}: writing the outputs failed (No space left on device); " \
                               f"the files there are as they were"
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no staging folder left either


def test_a_set_moved_in_part_way_has_no_record(tmp_path, monkeypatch):
    old_set(tmp_path)
    moved = []

    def replace_then_fail(source, target):
        if os.path.dirname(target) == str(tmp_path):  # a move into the folder, not a write in staging
            if moved:
                raise OSError(errno.EIO, "Input/output error")
            moved.append(os.path.basename(target))
        os.rename(source, target)

    monkeypatch.setattr("avaudit.outputs.os.replace", replace_then_fail)
    with pytest.raises(OutputError, match=r"moving the outputs in failed \(Input/output error\); the set there "
                                          r"is incomplete \(no x_run.yaml\): run the command again$"):
        with output_set(tmp_path, record="x_run.yaml") as staged:
            write_csv(pd.DataFrame({"a": [2]}), staged / "x_table.csv")
            write_csv(pd.DataFrame({"b": [2]}), staged / "x_more.csv")
            (staged / "x_run.yaml").write_text("command: x\n")
    assert moved == ["x_more.csv"] and sorted(p.name for p in tmp_path.iterdir()) == ["x_more.csv", "x_table.csv"]


def test_the_record_is_written_last_and_named_files_of_an_earlier_run_are_removed(tmp_path, monkeypatch):
    old_set(tmp_path)
    (tmp_path / "x_skipped.csv").write_text("stale\n")
    (tmp_path / "skipped.csv").write_text("the user's own\n")
    order = []
    real = os.replace
    monkeypatch.setattr("avaudit.outputs.os.replace", lambda s, t: (
        order.append(os.path.basename(t)) if os.path.dirname(t) == str(tmp_path) else None, real(s, t)))
    with output_set(tmp_path, record="x_run.yaml", remove=["x_skipped.csv"]) as staged:
        (staged / "x_run.yaml").write_text("command: x\n")
        (staged / "x_b.csv").write_text("b\n")
        (staged / "x_a.csv").write_text("a\n")
    assert order == ["x_a.csv", "x_b.csv", "x_run.yaml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["skipped.csv", "x_a.csv", "x_b.csv", "x_run.yaml",
                                                          "x_table.csv"]


def test_temp_files_of_killed_writers_are_cleaned_and_live_ones_kept(tmp_path):
    dead = tmp_path / f".model.pt.{dead_pid()}.{HOST}.k1l2d3.tmp"
    live = tmp_path / f".model.pt.{os.getppid()}.{HOST}.l1v2e3.tmp"
    far = tmp_path / f".model.pt.{dead_pid()}.other-host.example.f4r5.tmp"
    staged = tmp_path / f".avaudit-outputs.{dead_pid()}.{HOST}.s6t7.tmp"
    for path in (dead, live, far):
        path.write_bytes(b"partial")
    staged.mkdir()
    (staged / "bias_videos.csv").write_text("partial")
    assert clean_stale_temps(tmp_path, "model.pt") == [dead]
    assert live.exists() and far.exists()  # a live writer's; another machine's, not an hour old yet
    os.utime(far, (0, 0))
    assert clean_stale_temps(tmp_path, "model.pt") == [far]
    old_set(tmp_path)  # a new output set cleans the staging folder a killed run left
    assert not staged.exists()


def test_a_killed_checkpoint_save_leaves_no_temp_file_after_the_next_load(tiny_model, tmp_path):
    from avaudit.model.checkpoint import load_checkpoint

    model = tmp_path / "m.pt"
    model.write_bytes(tiny_model.read_bytes())
    left = tmp_path / f".m.pt.{dead_pid()}.{HOST}.abc123.tmp"
    left.write_bytes(tiny_model.read_bytes()[:100])
    load_checkpoint(model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_outputs_on_an_input_inside_data_or_on_a_folder_are_refused(tmp_path):
    data = tmp_path / "data"
    (data / "dog").mkdir(parents=True)
    clip = data / "dog" / "a.mp4"
    clip.write_bytes(b"x")
    manifest = tmp_path / "list.csv"
    manifest.write_text(f"path,label\n{clip},dog\n")
    model = tmp_path / "m.pt"
    model.write_bytes(b"m")
    media = pd.Series([str(clip)])

    def refused(path, data=manifest):
        with pytest.raises(UsageError) as error:
            check_writes([tmp_path / "out" / "ok.csv", path], data=data, model=model, media=media)
        return str(error.value)

    assert refused(manifest) == f"{manifest} is DATA ({manifest}): refusing to overwrite an input; " \
                                f"choose another output path"
    assert refused(model) == f"{model} is the model ({model}): refusing to overwrite an input; " \
                             f"choose another output path"
    assert refused(tmp_path / "data" / ".." / "data" / "dog" / "a.mp4") == (
        f"{tmp_path}/data/../data/dog/a.mp4 is a video listed in DATA: refusing to overwrite an input; "
        f"choose another output path")
    assert refused(tmp_path / "data") == f"{tmp_path}/data is a folder: name a file to write there"
    assert refused(data / "out" / "x.csv", data=data) == (
        f"{data}/out/x.csv is inside DATA {data}: avaudit never writes into DATA; choose an output path elsewhere")
    assert refused(model / "x.csv") == f"cannot write {model}/x.csv: {model} is a file, not a folder"
    check_writes([tmp_path / "out" / "ok.csv", tmp_path / "new.npz"], data=data, model=model, media=media)


@pytest.fixture
def small_data(planted, tmp_path):
    """Two planted clips and a missing one, as a path,label manifest (one row is always skipped)."""
    lines = ["path,label"]
    for clip in sorted(planted.glob("*/*.mp4"))[:2]:  # copied beside the manifest: media lie inside the root
        (tmp_path / "clips" / clip.parent.name).mkdir(parents=True, exist_ok=True)
        clip = Path(shutil.copyfile(clip, tmp_path / "clips" / clip.parent.name / clip.name))
        lines.append(f"{clip},{clip.parent.name}")
    lines.append(f"{tmp_path}/gone.mp4,{clip.parent.name}")
    (tmp_path / "small.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "clean.csv").write_text("\n".join(lines[:-1]) + "\n")
    return tmp_path / "small.csv", tmp_path / "clean.csv"


def test_predict_refuses_to_export_over_its_own_data_before_any_work(small_data, tiny_model, tmp_path):
    data, _ = small_data
    before = data.read_bytes()
    result = invoke("predict", data, "--model", tiny_model, "--out", tmp_path / "p", "--export-probs", data)
    assert result.exit_code == 2
    assert result.output == f"error: {data} is DATA ({data}): refusing to overwrite an input; " \
                            f"choose another output path\n"
    assert data.read_bytes() == before and not (tmp_path / "p").exists()
    (tmp_path / "folder.npz").mkdir()
    result = invoke("predict", data, "--model", tiny_model, "--out", tmp_path / "p",
                    "--export-probs", tmp_path / "folder.npz")
    assert result.exit_code == 2 and not (tmp_path / "p").exists()
    assert result.output == f"error: {tmp_path}/folder.npz is a folder: name a file to write there\n"


def test_retarget_refuses_a_folder_as_out_before_auditing(small_data, tiny_model, tmp_path):
    data, _ = small_data
    (tmp_path / "subset").mkdir()
    result = invoke("retarget", data, "--keep", "audio", "--model", tiny_model, "--out", tmp_path / "subset")
    assert result.exit_code == 2 and not (tmp_path / "bias").exists()
    assert result.output == f"error: --out {tmp_path}/subset is a folder: name the subset file to write, " \
                            f"e.g. {tmp_path}/subset/subset.csv\n"


def test_commands_sharing_an_out_keep_each_others_files_and_the_users(small_data, tiny_model, tmp_path, cache):
    data, clean = small_data
    out = tmp_path / "out"
    out.mkdir()
    (out / "skipped.csv").write_text("the user's own\n")
    (out / "run.yaml").write_text("the user's own\n")
    for command in ("bias", "predict", "missing-labels"):
        result = invoke(command, data, "--model", tiny_model, "--out", out)
        assert result.exit_code == 1, result.output
        name = command.replace("-", "_")
        assert f"see {out}/{name}_skipped.csv" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "bias_categories.csv", "bias_run.yaml", "bias_skipped.csv", "bias_summary.json", "bias_videos.csv",
        "confusions.csv", "missing_labels.csv", "missing_labels_run.yaml", "missing_labels_skipped.csv", "predict_run.yaml",
        "predict_skipped.csv", "predictions.csv", "run.yaml", "skipped.csv"]
    assert (out / "skipped.csv").read_text() == (out / "run.yaml").read_text() == "the user's own\n"
    assert invoke("predict", clean, "--model", tiny_model, "--out", out).exit_code == 0
    assert not (out / "predict_skipped.csv").exists() and (out / "bias_skipped.csv").exists()
    assert yaml.safe_load((out / "predict_run.yaml").read_text())["outputs"] == ["predictions.csv"]
    report = cli("report", out)
    assert report.exit_code == 0, report.output
    page = (out / "report.html").read_text()
    skipped = page.split('<section id="skipped">')[1].split("</section>")[0]
    assert '<a href="bias_skipped.csv">' in skipped and '<a href="missing_labels_skipped.csv">' in skipped
    assert "predict_skipped.csv" not in skipped and "2 skipped rows" in skipped  # one row in each list


@pytest.mark.slow
def test_a_full_disk_during_bias_leaves_the_previous_outputs_whole(small_data, tiny_model, tmp_path, monkeypatch,
                                                                    cache):
    data, _ = small_data
    out = tmp_path / "out"
    assert invoke("bias", data, "--model", tiny_model, "--out", out).exit_code == 1
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    import avaudit.runs

    written = []

    def fill_the_disk(frame, path):
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(path)
        write_csv(frame, path)

    monkeypatch.setattr(avaudit.runs, "write_csv", fill_the_disk)
    result = invoke("bias", data, "--model", tiny_model, "--out", out, "--rule", "paper")
    assert result.exit_code == 2
    assert result.output == f"error: {out}: writing the outputs failed (No space left on device); " \
                            f"the files there are as they were\n"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.slow
def test_an_unwritable_cache_is_one_warning_and_the_audit_goes_on(small_data, tiny_model, tmp_path):
    data, _ = small_data
    blocked = tmp_path / "cache_is_a_file"
    blocked.write_text("not a folder")
    result = invoke("bias", data, "--model", tiny_model, "--out", tmp_path / "out", "--cache-dir", blocked)
    assert result.exit_code == 1, result.output  # the missing clip; the other two are audited
    assert result.output.count("warning: ") == 1
    assert f"warning: the logit cache {blocked}/" in result.output
    assert "cannot be written (Not a directory): going on without caching" in result.output
    assert "0 of 3 videos read from the cache, 2 decoded, 1 skipped" in result.output
    assert len(pd.read_csv(tmp_path / "out" / "bias_videos.csv")) == 2
