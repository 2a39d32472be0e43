"""`train` refuses what cannot train, and any output it must not write, before the work and in one
line; what it prints names what it wrote (issue 21: items 9, 11, 23, 24, 25 and the cosmetics)."""
import errno
import math
import os

import numpy as np
import pytest
import yaml
from cli_helpers import cli

import avaudit
from avaudit.errors import UsageError


@pytest.fixture
def recipe_calls(monkeypatch):
    """The recipe replaced: a call that reaches it passed every check made before the work."""
    from avaudit.training import recipe

    calls = []

    def reached(table, **kwargs):
        calls.append(kwargs)
        raise SystemExit(3)

    monkeypatch.setattr(recipe, "run_recipe", reached)
    return calls


@pytest.fixture
def data(tmp_path):
    """Two categories of two (empty) clips: enough to get past reading DATA."""
    for label in ("dog", "cat"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(2):
            (tmp_path / "data" / label / f"{i}.mp4").write_bytes(b"")
    return tmp_path / "data"


def train(*args):
    return cli("train", *args)


def last_line(result) -> str:
    return result.output.strip().splitlines()[-1]


@pytest.mark.parametrize("epochs", ["0", "-2"])
def test_epochs_below_one_are_refused_and_nothing_is_written(data, tmp_path, recipe_calls, epochs):
    result = train(data, "--epochs", epochs, "--out", tmp_path / "out" / "m.pt")
    assert result.exit_code == 2, result.output
    assert last_line(result) == f"error: epochs must be 1 or more, not {epochs}"
    assert recipe_calls == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize("epochs, why", [([0, 0, 0], "no stage has an epoch to train"),
                                         ([1, -1, 1], "an epoch count below 0")])
def test_a_preset_that_trains_no_epoch_is_refused(data, tmp_path, tiny_preset, recipe_calls, epochs, why):
    preset = yaml.safe_load(tiny_preset.read_text())
    preset["train"]["epochs"] = epochs
    (tmp_path / "none.yaml").write_text(yaml.safe_dump(preset))
    result = train(data, "--preset", tmp_path / "none.yaml", "--out", tmp_path / "m.pt")
    assert result.exit_code == 2, result.output
    assert last_line(result) == f"error: the preset's train.epochs is {epochs}: {why}; no model written"
    assert recipe_calls == []


@pytest.mark.parametrize("keywords, message", [
    ({"epochs": "1"}, "epochs must be a whole number (int), not '1' (str)"),
    ({"epochs": True}, "epochs must be a whole number (int), not True (bool)"),
    ({"epochs": 0}, "epochs must be 1 or more, not 0"),
    ({"seed": 1.5}, "seed must be a whole number (int), not 1.5 (float)"),
    ({"workers": -1}, "workers must be 0 or more, not -1"),
    ({"memory_budget": "2"}, "memory_budget must be a number, not '2' (str)"),
    ({"checkpoint_minutes": -1.0}, "checkpoint_minutes must be 0 or more, not -1.0"),
    ({"checkpoint_steps": 2.0}, "checkpoint_steps must be a whole number (int), not 2.0 (float)"),
    ({"device": "tpu"}, "device must be one of auto, cpu, cuda, not 'tpu'"),
    ({"resume": "yes"}, "resume must be True or False, not 'yes' (str)"),
    ({"preset": 3}, "preset must be a preset name or a YAML file (str or Path), not 3 (int)"),
    ({"out": 3}, "out must be a path (str or Path), not 3 (int)"),
    ({"video_weights": 123}, "video_weights must be a path (str or Path), not 123 (int)"),
])
def test_the_python_api_checks_its_arguments_in_its_own_terms(data, tmp_path, recipe_calls, keywords, message):
    keywords = {"out": tmp_path / "m.pt", **keywords}
    with pytest.raises(UsageError) as caught:
        avaudit.train(data, **keywords)
    assert str(caught.value) == message
    assert recipe_calls == []


def test_resume_with_no_checkpoint_at_out_starts_afresh_with_a_note(data, tmp_path, recipe_calls):
    out = tmp_path / "new" / "m.pt"
    result = train(data, "--out", out, "--resume")
    assert result.exit_code == 3, result.output  # the recipe was reached
    assert (f"warning: resume: {out} does not exist, so there is nothing to resume; training starts afresh"
            in result.output)
    assert recipe_calls[0]["resume"] is False


def test_an_out_inside_data_is_refused_as_the_audits_refuse_it(data, tmp_path, recipe_calls):
    result = train(data, "--out", data / "model.pt")
    assert result.exit_code == 2
    assert last_line(result) == (f"error: {data / 'model.pt'} is inside DATA {data}: avaudit never writes into "
                                 f"DATA; choose an output path elsewhere")
    (tmp_path / "link").symlink_to(data)  # the same folder by another path
    assert train(data, "--out", tmp_path / "link" / "dog" / "m.pt").exit_code == 2
    assert recipe_calls == [] and sorted(p.name for p in data.rglob("*")) == ["0.mp4", "0.mp4", "1.mp4", "1.mp4",
                                                                               "cat", "dog"]


def test_no_file_train_writes_may_be_an_input(tmp_path, recipe_calls):
    """The manifest, as --out (with --resume, which would overwrite it) or as the history beside it."""
    (tmp_path / "a.mp4").write_bytes(b"")
    manifest = tmp_path / "train_history.csv"
    (tmp_path / "b.mp4").write_bytes(b"")
    manifest.write_text("path,label\na.mp4,dog\nb.mp4,cat\n")
    before = manifest.read_bytes()
    result = train(manifest, "--out", manifest, "--resume")
    assert result.exit_code == 2
    assert last_line(result) == (f"error: {manifest} is DATA ({manifest}): refusing to overwrite an input; choose "
                                 f"another output path")
    result = train(manifest, "--out", tmp_path / "m.pt")
    assert result.exit_code == 2
    assert last_line(result) == (f"error: {manifest} is DATA ({manifest}): refusing to overwrite an input; choose "
                                 f"another output path")
    assert recipe_calls == [] and manifest.read_bytes() == before


def test_an_out_that_is_a_folder_is_named_as_one(data, tmp_path, recipe_calls):
    (tmp_path / "models").mkdir()
    result = train(data, "--out", tmp_path / "models")
    assert result.exit_code == 2
    assert last_line(result) == f"error: {tmp_path / 'models'} is a folder: name a file to write there"
    assert recipe_calls == []


def read_only_folder(tmp_path):
    """A folder no file can be created in: a 0o555 folder, or, as root (whom modes do not stop), /sys."""
    if os.geteuid() == 0:
        return __import__("pathlib").Path("/sys")
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


def test_an_unwritable_out_is_one_line_before_any_work(data, tmp_path, recipe_calls):
    folder = read_only_folder(tmp_path)
    result = train(data, "--out", folder / "sub" / "m.pt")
    assert result.exit_code == 2, result.output
    assert last_line(result).startswith(f"error: cannot write {folder / 'sub' / 'm.pt'}: {folder} does not take new files")
    assert recipe_calls == [] and not (folder / "sub").exists()


def test_a_location_without_room_for_the_checkpoint_is_refused_before_any_work(data, tmp_path, recipe_calls,
                                                                               monkeypatch):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1024))
    result = train(data, "--out", tmp_path / "m.pt")
    assert result.exit_code == 2, result.output
    assert last_line(result).startswith(f"error: cannot write {tmp_path / 'm.pt'}: {tmp_path} has 1 KiB free, "
                                        f"and the checkpoint needs about ")
    assert recipe_calls == []


@pytest.mark.slow
def test_a_disk_that_fills_during_training_ends_in_one_line(planted, tiny_preset, tmp_path, monkeypatch):
    from avaudit.model import checkpoint

    def full(obj, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint, "atomic_save", full)
    out = tmp_path / "m.pt"
    result = train(planted, "--preset", tiny_preset, "--out", out, "--device", "cpu")
    assert result.exit_code == 2, result.output
    assert last_line(result) == (f"error: {out}: writing the checkpoint failed (No space left on device); the last "
                                 f"one written there, if any, is whole: make room and train again with --resume")
    assert "Traceback" not in result.output


def test_categories_without_a_validation_clip_keep_their_row_as_not_measured():
    from avaudit.audits.metrics import category_accuracies

    logits = np.zeros((3, 5, 3), np.float32)
    logits[:, :, 0] = 1.0
    table = category_accuracies(logits, np.array([0, 0, 1]), ["a", "b", "c"])
    assert table["category"].tolist() == ["a", "b", "c"] and table["n_val"].tolist() == [2, 1, 0]
    assert table.loc[0, "vote"] == 1.0 and table.loc[1, "vote"] == 0.0 and math.isnan(table.loc[2, "vote"])


def result_of(categories, **files):
    nan = float("nan")
    row = dict.fromkeys(("continuous", "instant", "onset", "visual", "audio", "vote"), nan)
    return {"n_val": 0, "n_train": 2, "val": row, "categories": [{"category": c, "n_val": 0, **row} for c in categories],
            **files}


def test_the_validation_table_shows_a_category_without_validation_clips_as_na(tmp_path):
    from rich.console import Console

    from avaudit.audits.metrics import category_accuracies
    from avaudit.display import show_train_result

    logits = np.zeros((2, 5, 2), np.float32)
    categories = category_accuracies(logits, np.array([0, 0]), ["cat", "dog"]).to_dict("records")
    console = Console(record=True, width=120)
    show_train_result(console, {**result_of([]), "categories": categories}, tmp_path / "m.pt")
    assert "│ dog      │        n/a │     n/a │   n/a │    n/a │   n/a │  n/a │" in console.export_text()


def test_the_result_names_only_the_files_written(tmp_path):
    from rich.console import Console

    from avaudit.display import show_train_result

    console = Console(record=True, width=200)
    show_train_result(console, result_of([], history_csv=tmp_path / "train_history.csv", curves_png=None),
                      tmp_path / "m.pt")
    text = console.export_text()
    assert f"per-epoch history: {tmp_path / 'train_history.csv'}\n" in text and "train_curves.png" not in text


def test_piped_training_progress_names_every_layer_whole(capsys):
    from avaudit.display import TrainProgress
    from avaudit.vocab import LAYERS

    with TrainProgress() as progress:
        progress("stage", {"stage": "joint", "epochs": 2, "batches": 3, "first_epoch": 0, "first_step": 0,
                           "clips_per_epoch": 12, "world": 1, "measured": (*LAYERS, "vote")})
        for epoch in range(2):
            for batch in range(3):
                progress("batch", {"stage": "joint", "epoch": epoch, "batch": batch, "loss": 2.5, "clips": 4})
            progress("epoch", {"stage": "joint", "epoch": epoch + 1, "lr": 0.01, "loss": 2.5,
                               **{f"val_{name}": 0.25 for name in (*LAYERS, "vote")}})
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"joint stage epoch {e}/2: loss 2.500, val continuous 0.25, instant 0.25, onset 0.25, "
                     f"visual 0.25, audio 0.25, vote 0.25, lr 1e-02" for e in (1, 2)]
