import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from avaudit.config import load_config
from avaudit.media.manifests import read_manifest
from avaudit.model.checkpoint import load_checkpoint
from avaudit.training import STAGES, split_train_val, train


def test_split_holds_out_a_seeded_share_of_every_category():
    table = pd.DataFrame({"label": ["a"] * 10 + ["b"] * 5 + ["c"], "split": [""] * 16})
    train_idx, val_idx = split_train_val(table, fraction=0.2, seed=1)
    assert sorted(np.concatenate([train_idx, val_idx]).tolist()) == list(range(16))
    assert (table["label"].iloc[val_idx].value_counts().to_dict()) == {"a": 2, "b": 1}
    again = split_train_val(table, fraction=0.2, seed=1)
    assert np.array_equal(again[1], val_idx)
    assert not np.array_equal(split_train_val(table, fraction=0.2, seed=2)[1], val_idx)


def test_split_column_wins_when_it_names_train_and_val():
    table = pd.DataFrame({"label": ["a", "a", "b", "b"], "split": ["train", "val", "train", "test"]})
    train_idx, val_idx = split_train_val(table, fraction=0.5, seed=0)
    assert train_idx.tolist() == [0, 2] and val_idx.tolist() == [1]


def test_stages_follow_section_4_2():
    assert [s.name for s in STAGES] == ["audio", "video", "joint"]
    assert STAGES[0].layers == ("audio",) and not STAGES[0].use_video
    assert STAGES[1].layers == ("visual",) and not STAGES[1].use_audio
    assert len(STAGES[2].layers) == 5


class Interrupt(Exception):
    pass


def test_training_writes_a_safe_checkpoint_and_resume_matches_an_uninterrupted_run(planted, tiny_preset, tmp_path):
    config = load_config(tiny_preset, {"train.epochs": [1, 2, 2]})
    table = read_manifest(planted).table
    full = train(table, config=config, out=tmp_path / "full.pt", device="cpu")

    saved = load_checkpoint(tmp_path / "full.pt")  # weights_only=True inside
    assert saved["config"]["preset"] == "tiny" and len(saved["classes"]) == 16
    assert saved["recipe"]["done"] and [h["stage"] for h in saved["metrics"]["history"]] == \
        ["audio", "video", "video", "joint", "joint"]
    assert set(saved["versions"]) >= {"torch", "torchvision", "torchaudio", "decord"}
    assert 0.0 <= full["val"]["vote"] <= 1.0 and full["n_val"] > 0

    def stop_mid_epoch(kind, info):
        if kind == "batch" and info["stage"] == "joint" and info["epoch"] == 1 and info["batch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(table, config=config, out=tmp_path / "cut.pt", device="cpu", on_event=stop_mid_epoch)
    cut = load_checkpoint(tmp_path / "cut.pt")
    assert not cut["recipe"]["done"] and len(cut["metrics"]["history"]) == 4
    resumed = train(table, config=config, out=tmp_path / "cut.pt", device="cpu", resume=True)
    assert resumed["val"] == full["val"]
    final = load_checkpoint(tmp_path / "cut.pt")
    for key, value in saved["model"].items():
        torch.testing.assert_close(final["model"][key], value, rtol=0, atol=0)


def test_resume_refuses_a_checkpoint_of_another_preset(planted, tiny_preset, tmp_path):
    from avaudit.model.checkpoint import CheckpointError

    config = load_config(tiny_preset, {"train.epochs": [1, 0, 0]})
    table = read_manifest(planted).table
    train(table, config=config, out=tmp_path / "m.pt", device="cpu")
    other = load_config("small", {"train.epochs": [1, 0, 0]})
    with pytest.raises(CheckpointError, match="preset 'tiny', not 'small'"):
        train(table, config=other, out=tmp_path / "m.pt", device="cpu", resume=True)


@pytest.mark.slow
def test_two_process_torchrun_on_cpu_with_gloo(planted, tiny_preset, tmp_path):
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
         "-m", "avaudit", "train", str(planted), "--preset", str(tiny_preset), "--out", str(out), "--device", "cpu"],
        capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-3000:]
    saved = load_checkpoint(out)
    assert saved["recipe"]["done"] and len(saved["metrics"]["history"]) == 3
    assert "validation accuracy" in result.stdout and result.stdout.count("model written to") == 1


@pytest.mark.slow
def test_kill_minus_9_mid_training_then_resume_ends_like_an_uninterrupted_run(planted, tiny_preset, tmp_path):
    """A real SIGKILL at whatever batch it lands on; --resume must end where an uninterrupted run ends."""
    import signal
    import time

    epochs = [1, 2, 3]
    config = load_config(tiny_preset, {"train.epochs": epochs})
    table = read_manifest(planted).table
    full = train(table, config=config, out=tmp_path / "full.pt", device="cpu")

    import yaml

    data = yaml.safe_load(tiny_preset.read_text())
    data["train"]["epochs"] = epochs
    preset = tmp_path / "tiny.yaml"  # same preset name, so --resume accepts the checkpoint
    preset.write_text(yaml.safe_dump(data))
    out = tmp_path / "killed.pt"
    command = [sys.executable, "-m", "avaudit", "train", str(planted), "--preset", str(preset), "--out", str(out),
               "--device", "cpu"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if out.exists() and len(load_checkpoint(out)["metrics"]["history"]) >= 2:
            break
        time.sleep(0.2)
    assert process.poll() is None, "training ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    cut = load_checkpoint(out)  # the file a kill left behind is whole
    assert not cut["recipe"]["done"]
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = load_checkpoint(out)
    assert final["metrics"]["final"]["val"] == full["val"]
    reference = load_checkpoint(tmp_path / "full.pt")["model"]
    for key, value in reference.items():
        torch.testing.assert_close(final["model"][key], value, rtol=0, atol=0)


def test_training_refuses_when_every_clip_was_skipped_and_writes_no_model(tiny_preset, tmp_path):
    from typer.testing import CliRunner

    from avaudit.cli import app

    for label in ("dog", "cat"):
        for i in range(2):
            (tmp_path / "data" / label).mkdir(parents=True, exist_ok=True)
            (tmp_path / "data" / label / f"{i}.mp4").write_text("not a video")
    result = CliRunner().invoke(app, ["train", str(tmp_path / "data"), "--preset", str(tiny_preset), "--out",
                                      str(tmp_path / "m.pt"), "--device", "cpu"])
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == ("error: no clip to train on: 4 of 4 clips were skipped (4 unreadable "
                                              "container); no model written")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_categories_without_a_validation_clip_are_named_and_their_accuracy_shown_as_na(planted, tiny_preset,
                                                                                       tmp_path):
    from typer.testing import CliRunner

    from avaudit.cli import app

    for folder in sorted(p for p in planted.iterdir() if p.is_dir())[:2]:  # one clip of each of two categories
        (tmp_path / "data" / folder.name).mkdir(parents=True)
        (tmp_path / "data" / folder.name / "a.mp4").symlink_to(sorted(folder.glob("*.mp4"))[0])
    names = sorted(p.name for p in (tmp_path / "data").iterdir())
    result = CliRunner().invoke(app, ["train", str(tmp_path / "data"), "--preset", str(tiny_preset), "--out",
                                      str(tmp_path / "m.pt"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert (f"warning: 2 of 2 categories have no validation clip (one needs 2 or more clips that decode to hold one "
            f"out): {names[0]}, {names[1]}; their accuracy is not measured (n/a); with no validation clip at all, "
            f"every accuracy is NaN, the learning rate never drops and the temperatures stay 1") in result.output
    assert "validation accuracy (0 clips held out, 2 trained on)" in result.output
    assert "│ all      │        n/a │     n/a │   n/a │    n/a │   n/a │  n/a │" in result.output
    assert "nan" not in result.output
