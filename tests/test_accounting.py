"""Every row accounted for, whatever the root; one answer for labels the model does not know; the
small refusals. Each command runs in-process (CliRunner) on data whose outcome is known."""
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import cli

DATA = Path(__file__).parent / "data" / "manifests"
K400 = DATA / "kinetics-400_val_head300.csv"


def classes_of(model: Path) -> list[str]:
    import torch

    return list(torch.load(model, weights_only=True)["classes"])


def skipped(folder: Path, command: str = "bias") -> pd.DataFrame:
    return pd.read_csv(folder / f"{command.replace('-', '_')}_skipped.csv", keep_default_na=False)


def listed(out: Path, command: str) -> Path:
    """Where a command lists its skipped rows: retarget points to its bias run's list."""
    return out / "bias" / "bias_skipped.csv" if command == "retarget" else out / f"{command.replace('-', '_')}_skipped.csv"


def wrong_root_lines(tmp_path: Path, out: Path, command: str) -> tuple[str, str]:
    example = tmp_path / "empty" / "val" / "abseiling" / "0wR5jVB-WPk_000417_000427.mp4"
    return (f"note: 0 of 300 files found under {tmp_path / 'empty'}; e.g. {example}",
            f"300 of 300 videos skipped (300 missing file): see {listed(out, command)}")


@pytest.mark.parametrize("command", ["bias", "predict", "missing-labels", "retarget", "quality"])
def test_a_wrong_root_is_every_row_a_missing_file_and_one_line_says_where(tmp_path, tiny_model, command):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    extra = ["--keep", "audiovisual", "--out", out / "subset.csv"] if command == "retarget" else ["--out", out]
    result = cli(command, K400, "--root", tmp_path / "empty", "--model", tiny_model, *extra)
    assert result.exit_code == 1, result.output
    note, summary = wrong_root_lines(tmp_path, out, command)
    assert note in result.output.splitlines() and summary in result.output.splitlines()
    rows = pd.read_csv(listed(out, command), keep_default_na=False)
    assert len(rows) == 300 and set(rows["reason"]) == {"missing file"}
    if command == "retarget":
        assert (out / "subset.csv").read_text() == K400.read_text().splitlines()[0] + "\n"
    report = cli("report", out)
    assert report.exit_code == 0, report.output
    assert report.output == f"report written to {out / 'report.html'}\n"


def test_zero_decoded_rows_never_crash_a_command(tmp_path, tiny_model):
    classes = classes_of(tiny_model)
    data = tmp_path / "data"
    for name in classes[:3]:
        (data / name).mkdir(parents=True)
        (data / name / "empty.mp4").write_bytes(b"")
    common = ["--model", tiny_model, "--device", "cpu", "--workers", "0"]
    for command, out in [("bias", "bias"), ("predict", "predict"), ("missing-labels", "missing"),
                         ("quality", "quality")]:
        result = cli(command, data, "--out", tmp_path / "outs" / out, *common)
        assert result.exit_code == 1, result.output
        assert f"3 of 3 videos skipped (3 unreadable container): see {listed(tmp_path / 'outs' / out, command)}" \
            in result.output.splitlines()
    result = cli("retarget", data, "--keep", "audio", "--out", tmp_path / "outs" / "retarget" / "subset.csv", *common)
    assert result.exit_code == 1, result.output
    assert (tmp_path / "outs/retarget/subset.csv").read_text() == "path,label\n"
    assert cli("report", tmp_path / "outs").exit_code == 0
    assert json.loads((tmp_path / "outs/bias/bias_summary.json").read_text())["n_videos"] == 0


@pytest.mark.slow
def test_acceptance_bias_on_the_full_kinetics_val_size_with_a_wrong_root_takes_seconds(tmp_path):
    """avaudit bias on a 19,906-row Kinetics CSV with a wrong --root: exit 1, every row `missing file`,
    the found-files line, in seconds (a fresh process, the shipped model)."""
    import os
    import subprocess
    import sys
    import time

    from bigkinetics import write_big_kinetics

    src = write_big_kinetics(tmp_path / "kinetics_val.csv")
    (tmp_path / "nowhere").mkdir()
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "avaudit", "bias", str(src), "--root", str(tmp_path / "nowhere"),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "COLUMNS": "400"})
    seconds = time.perf_counter() - started
    assert result.returncode == 1, result.stderr[-2000:]
    example = tmp_path / "nowhere" / "val" / "abseiling 0" / "0wR5jVB-000_000417_000427.mp4"
    assert f"note: 0 of 19,906 files found under {tmp_path / 'nowhere'}; e.g. {example}" in result.stdout.splitlines()
    rows = skipped(tmp_path / "out")
    assert len(rows) == 19_906 and set(rows["reason"]) == {"missing file"}
    assert seconds < 60, seconds


def copy_clips(planted: Path, dest: Path, classes: list[str], per_class: int = 1) -> dict[str, list[Path]]:
    """A few of the planted clips, in category folders under dest."""
    clips = {}
    for name in classes:
        clips[name] = []
        for src in sorted((planted / name).glob("*.mp4"))[:per_class]:
            target = dest / name / src.name
            target.parent.mkdir(parents=True, exist_ok=True)
            clips[name].append(Path(shutil.copyfile(src, target)))
    return clips


def test_unlabelled_rows_are_skipped_rows_of_bias_and_audited_by_predict(tmp_path, planted, tiny_model):
    classes = classes_of(tiny_model)
    data = tmp_path / "data"
    clips = copy_clips(planted, data, classes[:2])
    loose = shutil.copyfile(clips[classes[0]][0], data / "loose.mp4")
    manifest = tmp_path / "list.csv"
    manifest.write_text(f"path,label\ndata/{classes[0]}/{clips[classes[0]][0].name},{classes[0]}\n"
                        f"data/{classes[1]}/{clips[classes[1]][0].name},\n")
    common = ["--model", tiny_model, "--device", "cpu", "--workers", "0"]
    for source, unlabelled in ((data, "loose"), (manifest, f"data/{classes[1]}/{clips[classes[1]][0].stem}")):
        out = tmp_path / "bias" / source.name
        result = cli("bias", source, "--out", out, *common)
        assert result.exit_code == 1, result.output
        assert skipped(out, "bias").values.tolist() == [[unlabelled, str(loose) if source == data else str(clips[classes[1]][0]),
                                                 "no label", f"{unlabelled}: no label; this audit judges each video "
                                                 f"against its label"]]
        assert len(pd.read_csv(out / "bias_videos.csv")) == (2 if source == data else 1)
    result = cli("predict", data, "--out", tmp_path / "predict", *common)
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "predict" / "predictions.csv")) == 3


def unknown_label_message(labels: list[str]) -> str:
    shown = ", ".join(repr(label) for label in labels)
    return (f"error: {len(labels)} label{'s' * (len(labels) > 1)} the model was not trained on: {shown}; "
            f"train on this data first (`avaudit train DATA`) and pass --model")


def test_every_command_that_compares_labels_refuses_unknown_ones_the_same_way(tmp_path, tiny_model):
    data = tmp_path / "data"
    (data / "juggling").mkdir(parents=True)
    (data / "juggling" / "a.mp4").write_bytes(b"")
    (data / "zebra crossing").mkdir()
    (data / "zebra crossing" / "b.mp4").write_bytes(b"")
    expected = unknown_label_message(["juggling", "zebra crossing"])
    model = ["--model", tiny_model, "--workers", "0"]
    for args in (["bias", data, "--out", tmp_path / "o1"], ["missing-labels", data, "--out", tmp_path / "o2"],
                 ["retarget", data, "--keep", "audio", "--out", tmp_path / "o3" / "s.csv"],
                 ["predict", data, "--out", tmp_path / "o4", "--export-probs", tmp_path / "p.npz"]):
        result = cli(*args, *model)
        assert result.exit_code == 2 and result.output.strip() == expected, (args[0], result.output)
    assert not any((tmp_path / name).exists() for name in ("o1", "o2", "o3", "o4", "p.npz"))

    classes = classes_of(tiny_model)
    known = ", ".join(repr(c) for c in classes[:10]) + (" ..." if len(classes) > 10 else "")
    result = cli("predict", data, "--out", tmp_path / "o5", *model)
    assert result.exit_code == 1, result.output
    assert (f"note: 2 labels of DATA the model was not trained on ('juggling', 'zebra crossing'); the model knows "
            f"{len(classes)} classes: {known}") in result.output.splitlines()
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "x.mp4").write_bytes(b"")
    result = cli("predict", flat, "--out", tmp_path / "o6", *model)
    assert f"note: DATA has no labels; the model knows {len(classes)} classes: {known}" in result.output.splitlines()
    assert "1 of 1 video skipped (1 unreadable container)" in result.output


@pytest.mark.slow
def test_localize_says_which_classes_the_model_knows(tmp_path, planted, tiny_model):
    clip = next((planted / classes_of(tiny_model)[0]).glob("*.mp4"))
    result = cli("localize", clip, "--model", tiny_model, "--out", tmp_path / "loc")
    assert result.exit_code == 0, result.output
    classes = classes_of(tiny_model)
    known = ", ".join(repr(c) for c in classes[:10]) + (" ..." if len(classes) > 10 else "")
    assert result.output.splitlines()[-1] == f"note: the model knows {len(classes)} classes: {known}"


@pytest.mark.slow
def test_train_makes_a_class_of_every_label_and_bias_runs_on_its_own_multilabel_data(tmp_path, planted, tiny_preset):
    from avaudit import commands
    from avaudit.training.command import train as train_data
    from avaudit.training.split import training_classes, training_labels

    labels = pd.Series(["a;b", "a", "a;c", "c"])
    assert training_classes(labels) == ["a", "b", "c"]
    assert set(training_labels(labels, seed=0)) == {"a", "b", "c"}

    names = sorted(p.name for p in planted.iterdir() if p.is_dir())[:3]
    clips = copy_clips(planted, tmp_path / "media", names, per_class=2)
    rows = ["path,label"]
    for i, (name, paths) in enumerate(clips.items()):
        for path in paths:
            extra = ";only_second" if i == 0 else ""  # a label that never comes first
            rows.append(f"{path.relative_to(tmp_path).as_posix()},{name}{extra}")
    (tmp_path / "multi.csv").write_text("\n".join(rows) + "\n")
    result = train_data(tmp_path / "multi.csv", preset=tiny_preset, out=tmp_path / "m.pt", device="cpu")
    assert result["classes"] == sorted([*names, "only_second"])
    run_ = commands.bias(tmp_path / "multi.csv", out=tmp_path / "bias", model=tmp_path / "m.pt", device="cpu",
                         workers=0)
    videos = run_.tables["bias_videos.csv"]
    assert len(videos) == 8 and (videos["label"] == "only_second").sum() == 2


@pytest.mark.parametrize("args, message", [
    (["bias", "{data}", "--sufficiency", "0"], "--sufficiency must be in (0, 1], not 0"),
    (["bias", "{data}", "--sufficiency", "1.5"], "--sufficiency must be in (0, 1], not 1.5"),
    (["missing-labels", "{data}", "--min-confidence", "-0.1"], "--min-confidence must be in [0, 1], not -0.1"),
    (["missing-labels", "{data}", "--min-confidence", "1.01"], "--min-confidence must be in [0, 1], not 1.01"),
    (["predict", "{data}", "--batch-size", "0"], "--batch-size must be 1 or more, not 0"),
    (["predict", "{data}", "--workers", "-1"], "--workers must be 0 or more, not -1"),
    (["bias", "{data}", "--out", "{file}"], "cannot write {file}/bias_videos.csv: {file} is a file, not a folder"),
    (["report", "{tmp}/nowhere"], "{tmp}/nowhere: no such folder (give the --out folder of an audit, e.g. avaudit-out/)"),
    (["bias", "{clip}"], "{clip}: DATA is one video, and this command audits a dataset (a folder of clips or a "
                         "manifest); for one video, run `avaudit localize {clip}`"),
    (["bias", "{data}", "--model", "{file}"], "{file}: not a checkpoint (not a file torch.save writes); pass the .pt "
                                              "file `avaudit train` wrote"),
])
def test_small_refusals_are_one_clear_line(tmp_path, clip10, args, message):
    (tmp_path / "data" / "dog").mkdir(parents=True)
    (tmp_path / "data" / "dog" / "a.mp4").write_bytes(b"")
    (tmp_path / "list.csv").write_text("path,label\nx.mp4,dog\n")
    values = {"data": tmp_path / "data", "file": tmp_path / "list.csv", "tmp": tmp_path, "clip": clip10}
    result = cli(*(a.format(**values) for a in args))
    assert result.exit_code == 2 and result.output.strip() == f"error: {message.format(**values)}", result.output


def test_a_secret_file_given_as_data_is_never_quoted(tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$very-secret-hash$:19000:0:99999:7:::\n")
    result = cli("predict", secret)
    assert result.exit_code == 2 and "secret" not in result.output.replace(str(secret), "")


def test_version():
    from importlib.metadata import version

    result = cli("--version")
    assert result.exit_code == 0 and result.output == f"avaudit {version('avaudit')}\n"


def test_outside_root_and_non_utf8_rows_are_counted_without_decoding(tmp_path, tiny_model):
    import os

    name = classes_of(tiny_model)[0]
    data = tmp_path / "data"
    (data / name).mkdir(parents=True)
    (data / name / "ok.mp4").write_bytes(b"")
    open(os.path.join(os.fsencode(data / name), b"caf\xe9.mp4"), "wb").close()
    result = cli("bias", data, "--model", tiny_model, "--out", tmp_path / "o", "--workers", "0")
    assert result.exit_code == 1, result.output
    assert sorted(skipped(tmp_path / "o")["reason"]) == ["non-UTF-8 name", "unreadable container"]
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "l.csv").write_text(f"path,label\n../data/{name}/ok.mp4,{name}\n/etc/hostname,{name}\n")
    result = cli("bias", tmp_path / "lists" / "l.csv", "--model", tiny_model, "--out", tmp_path / "o2")
    assert result.exit_code == 1, result.output
    assert skipped(tmp_path / "o2")["reason"].tolist() == ["outside root", "outside root"]
    assert "2 of 2 videos skipped (2 outside root)" in result.output


def test_counts_in_messages_agree_in_number():
    from avaudit.audits.retarget import select
    from avaudit.errors import UsageError
    from avaudit.vocab import plural

    assert [plural(1, "video"), plural(2, "video"), plural(19_906, "file"), plural(1, "class"), plural(3, "class"),
            plural(2, "category", "categories")] == ["1 video", "2 videos", "19,906 files", "1 class", "3 classes",
                                                    "2 categories"]
    empty = pd.DataFrame(columns=["video_id", "label", "layer", "group"])
    valid = "audiovisual, audio, visual, redundant, unclear, continuous, instant, onset"
    for keep, names in ((["bogus"], "name bogus"), (["bogus", "nope"], "names bogus, nope")):
        with pytest.raises(UsageError) as err:
            select(empty, empty, keep)
        assert str(err.value) == f"unknown group or layer {names}; valid: {valid}"


@pytest.mark.parametrize("command", ["bias", "predict", "missing-labels"])
def test_a_manifest_with_only_a_header_is_refused_by_every_audit(tmp_path, command):
    src = tmp_path / "list.csv"
    src.write_text("path,label\n")
    result = cli(command, src, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"error: {src}: the manifest lists no videos, only a header"
    assert not (tmp_path / "out").exists()


def test_a_huge_unknown_label_is_shortened_in_the_error_line(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "list.csv").write_text("path,label\na.mp4," + "z" * 10**6 + "\n")
    result = cli("bias", tmp_path / "list.csv", "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output[:300]
    assert len(result.output) < 1000 and "(1,000,000 characters)" in result.output


def test_every_line_of_a_messy_manifest_comes_out_in_the_skipped_list_of_an_audit(tmp_path):
    """Stray and unclosed quotes, a quoted line break, a repeated id, two files of one id, a bad label and
    a bad window: with no media under --root, each record is one skipped row naming its lines."""
    (tmp_path / "empty").mkdir()
    src = tmp_path / "list.csv"
    src.write_text('path,label,start,end\na.mp4,12" vinyl,,\nb.mp4,"open,,\n"c\nd.mp4",dog,,\ne.mp4,dog,,\n'
                   'e.mp4,dog,,\ng/a.mp4,cat,,\ng/a.mkv,cat,,\nh.mp4,rock;paper,,\n\ni.mp4,dog,20,5\n')
    result = cli("predict", src, "--root", tmp_path / "empty", "--out", tmp_path / "out")
    assert result.exit_code == 1, result.output
    rows = skipped(tmp_path / "out", "predict")
    assert [(d.split(":")[0], r) for d, r in zip(rows["detail"], rows["reason"])] == [
        ("line 2", "missing file"), ("line 3", "malformed row"), ("lines 4-5", "missing file"),
        ("line 6", "missing file"), ("line 7", "duplicate id"), ("line 8", "missing file"), ("line 9", "duplicate id"),
        ("line 10", "missing file"), ("line 12", "malformed row")]
    assert "9 of 9 videos skipped" in result.output


def test_clips_below_the_category_folders_are_a_note_of_the_audit(tmp_path):
    data = tmp_path / "data"
    for name in ("train/dog/a.mp4", "train/dog/b.mp4", "val/loose.mp4"):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_bytes(b"")
    result = cli("predict", data, "--out", tmp_path / "out", "--workers", "0")
    assert result.exit_code == 1, result.output
    assert (f"note: 2 media files in folders below the category folders not read, e.g. {data / 'train/dog/a.mp4'}: "
            f"avaudit reads DATA/<label>/<clip>; for a split layout (DATA/<split>/<label>/<clip>), give DATA/<split>"
            ) in result.output.splitlines()
    assert "1 of 1 video skipped (1 unreadable container)" in result.output
