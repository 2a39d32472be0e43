import gc
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from cli_helpers import cli

from avaudit.config import load_config
from avaudit.media.manifests import read_manifest
from avaudit.model.checkpoint import load_checkpoint
from avaudit.training.recipe import run_recipe as train
from avaudit.training.split import epoch_order, rank_batches, split_train_val
from avaudit.training.stages import STAGES
from avaudit.training.state import ResumeState


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


def test_epoch_order_is_distributed_samplers_and_rank_shares_are_disjoint():
    from torch.utils.data import DistributedSampler

    order = epoch_order(37, seed=3, epoch=2)
    sampler = DistributedSampler(range(37), num_replicas=1, rank=0, shuffle=True, seed=3)
    sampler.set_epoch(2)
    assert order.tolist() == list(sampler)  # one process: today's order, so today's weights
    assert not np.array_equal(order, epoch_order(37, seed=3, epoch=3))
    shares = [rank_batches(order, rank=r, world=3, per_rank=4) for r in range(3)]
    assert len({len(batches) for batches in shares}) == 1  # every rank steps together
    seen = np.concatenate([np.concatenate(batches) for batches in shares])
    assert sorted(seen.tolist()) == list(range(37))  # disjoint, no padding, nothing left out
    assert all(len(b) <= 4 for batches in shares for b in batches)


def test_resume_state_is_a_plain_dict_in_the_checkpoint_and_old_recipes_still_load():
    state = ResumeState(stage=1, epoch=2, step=3, loss_sum=1.5, loss_batches=3, skipped=[[4, "decode error", "x"]])
    assert ResumeState.from_dict(state.to_dict()) == state
    old = ResumeState.from_dict({"stage": 2, "epoch": 1, "optimizer": None, "scheduler": None, "done": False})
    assert (old.stage, old.epoch, old.step, old.skipped) == (2, 1, 0, [])


def history_without_timing(rows) -> pd.DataFrame:
    return pd.DataFrame(rows).drop(columns=["seconds", "clips_per_second"])


@pytest.mark.slow
def test_training_writes_a_safe_checkpoint_and_resume_matches_an_uninterrupted_run(planted, tiny_preset, tmp_path):
    """An uninterrupted run keeping the decoded clips in memory, against one that streams them, is
    stopped in the middle of an epoch after a step-count checkpoint, and is resumed in memory mode:
    same weights, same figures, same history."""
    config = load_config(tiny_preset, {"train.epochs": [1, 2, 2]})
    table = read_manifest(planted).table
    events = []
    full = train(table, config=config, out=tmp_path / "full" / "model.pt", device="cpu",
                 on_event=lambda kind, info: events.append((kind, info)))
    assert events[0] == ("data", {"memory": True, "note": events[0][1]["note"]})
    assert "kept in memory" in events[0][1]["note"]

    saved = load_checkpoint(tmp_path / "full" / "model.pt")  # weights_only=True inside
    assert saved["config"]["preset"] == "tiny" and len(saved["classes"]) == 16
    assert saved["recipe"]["done"] and [h["stage"] for h in saved["metrics"]["history"]] == \
        ["audio", "video", "video", "joint", "joint"]
    assert set(saved["versions"]) >= {"torch", "torchvision", "torchaudio", "decord"}
    assert 0.0 <= full["val"]["vote"] <= 1.0 and full["n_val"] > 0

    history = pd.read_csv(tmp_path / "full" / "train_history.csv")
    assert list(history.columns) == ["stage", "epoch", "lr", "loss", "val_continuous", "val_instant", "val_onset",
                                      "val_visual", "val_audio", "val_vote", "seconds", "clips_per_second"]
    assert history["stage"].tolist() == ["audio", "video", "video", "joint", "joint"]
    assert history["epoch"].tolist() == [1, 1, 2, 1, 2] and (history["lr"] == 0.01).all()
    # a stage measures the layers its inputs can tell: audio alone, visual alone, then all and the vote
    assert history["val_audio"].isna().tolist() == [False, True, True, False, False]
    assert history["val_visual"].isna().tolist() == [True, False, False, False, False]
    assert history["val_vote"].isna().tolist() == [True, True, True, False, False]
    assert history["val_vote"].iloc[-1] == pytest.approx(full["val"]["vote"], abs=1e-6)
    assert (history["seconds"] > 0).all() and (history["loss"] > 0).all()
    assert (tmp_path / "full" / "train_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    streaming = load_config(tiny_preset, {"train.epochs": [1, 2, 2], "train.memory_budget": 0,
                                          "train.checkpoint_steps": 2})
    cut_events = []

    def stop_mid_epoch(kind, info):
        cut_events.append((kind, info))
        if kind == "batch" and info["stage"] == "video" and info["epoch"] == 1 and info["batch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(table, config=streaming, out=tmp_path / "cut.pt", device="cpu", on_event=stop_mid_epoch)
    assert cut_events[0][0] == "data" and not cut_events[0][1]["memory"]
    cut = load_checkpoint(tmp_path / "cut.pt")
    recipe = cut["recipe"]
    assert not recipe["done"] and (recipe["stage"], recipe["epoch"], recipe["step"]) == (1, 1, 2)
    assert len(cut["metrics"]["history"]) == 2 and recipe["optimizer"] is not None
    resumed = train(table, config=config, out=tmp_path / "cut.pt", device="cpu", resume=True)
    assert resumed["val"] == full["val"]
    final = load_checkpoint(tmp_path / "cut.pt")
    for key, value in saved["model"].items():
        torch.testing.assert_close(final["model"][key], value, rtol=0, atol=0)
    pd.testing.assert_frame_equal(history_without_timing(final["metrics"]["history"]),
                                  history_without_timing(saved["metrics"]["history"]))


@pytest.mark.slow
def test_a_decoder_that_crashes_while_training_costs_its_clip(planted, tiny_preset, tmp_path, monkeypatch):
    """A decoding process that dies (here a SIGSEGV on one clip, every time) is that clip's `decoder
    crashed`; training goes on without it, in every stage, and lists it once."""
    import signal

    from avaudit.media.dataset import ClipDataset

    table = read_manifest(planted).table
    from avaudit.training.split import training_labels

    train_idx, _ = split_train_val(table.assign(label=training_labels(table["labels"], seed=0)), fraction=0.2,
                                   seed=0)
    doomed = table["path"].iat[int(train_idx[3])]
    decode_item = ClipDataset.decode_item

    def crash_on_doomed(self, index):  # runs in the forked decoding workers
        if str(self.paths[index]) == doomed:
            os.kill(os.getpid(), signal.SIGSEGV)
        return decode_item(self, index)

    monkeypatch.setattr(ClipDataset, "decode_item", crash_on_doomed)
    config = load_config(tiny_preset, {"train.epochs": [1, 1, 0], "train.memory_budget": 0, "train.num_workers": 2})
    result = train(table, config=config, out=tmp_path / "m.pt", device="cpu")
    skipped = result["skipped"]
    assert skipped["path"].tolist() == [doomed] and skipped["reason"].tolist() == ["decoder crashed"]
    assert "SIGSEGV" in skipped["detail"].iat[0]
    assert result["n_train"] == len(train_idx) - 1
    assert load_checkpoint(tmp_path / "m.pt")["recipe"]["skipped"][0][1] == "decoder crashed"


def live_tensor_bytes() -> int:
    """Bytes of every torch storage a live tensor holds (each storage once)."""
    storages = {}
    for obj in gc.get_objects():
        if issubclass(type(obj), torch.Tensor):  # type(): gc also holds weak proxies
            try:
                storage = obj.untyped_storage()
            except (RuntimeError, NotImplementedError):
                continue
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


@pytest.mark.slow
def test_streaming_training_holds_no_per_row_decoded_clips(planted, tiny_preset, tmp_path):
    """Past the memory budget, the tensors alive during training do not grow from 40 to 200 rows;
    in memory mode they do, by about the decoded clips (which shows the measure sees them)."""
    from avaudit.training.sources import clip_bytes

    base = read_manifest(planted).table

    def rows(n):
        table = base.iloc[np.arange(n) % len(base)].reset_index(drop=True)
        return table.assign(video_id=[f"v{i:04d}" for i in range(n)], row=np.arange(n))

    def peak(n, budget):
        config = load_config(tiny_preset, {"model.seconds": 2.0, "model.steps": 20, "train.epochs": [1, 1, 0],
                                           "train.memory_budget": budget})
        gc.collect()  # what earlier tests left behind is not this run's
        before = live_tensor_bytes()
        seen = [before]

        def measure(kind, info):
            if kind == "epoch" or (kind == "batch" and info["batch"] % 8 == 1):
                seen[0] = max(seen[0], live_tensor_bytes())

        train(rows(n), config=config, out=tmp_path / f"{n}_{budget}.pt", device="cpu", on_event=measure)
        return seen[0] - before, config  # the most the run's own tensors held at once

    small, config = peak(40, 0)
    large, _ = peak(200, 0)
    per_clip = clip_bytes(config.model)
    assert large - small < 0.05 * 160 * per_clip, (small, large, per_clip)
    kept, _ = peak(40, 2.0)
    assert kept - small > 0.8 * 40 * per_clip, (small, kept, per_clip)


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_of_another_preset(planted, tiny_preset, tmp_path):
    from avaudit.model.checkpoint import CheckpointError

    config = load_config(tiny_preset, {"train.epochs": [1, 0, 0]})
    table = read_manifest(planted).table
    train(table, config=config, out=tmp_path / "m.pt", device="cpu")
    other = load_config("small", {"train.epochs": [1, 0, 0]})
    with pytest.raises(CheckpointError, match="preset 'tiny', not 'small'"):
        train(table, config=other, out=tmp_path / "m.pt", device="cpu", resume=True)


DECODE_LOG = """
import os, sys
from avaudit.media import dataset

decode_item = dataset.ClipDataset.decode_item


def logged(self, index):  # one line per clip decoded: which inputs, which row, which rank
    with open(os.path.join(os.environ["DECODE_LOG"], "rank" + os.environ.get("RANK", "0") + ".txt"), "a") as log:
        log.write(f"{int(self.video)}{int(self.sound)}{int(self.onsets)} {index}\\n")
    return decode_item(self, index)


dataset.ClipDataset.decode_item = logged
from avaudit.cli import main

sys.argv[0] = "avaudit"
main()
"""


@pytest.mark.slow
def test_two_process_torchrun_on_cpu_with_gloo(planted, tiny_preset, tmp_path):
    """Two ranks, streaming, on the planted set plus five empty files (four among the training rows, one
    in the validation split): each rank decodes only its own share of every epoch and of the validation
    split (disjoint, together every row once per stage; a refused row never again), the uneven shares
    (21 good training rows) leave one rank an empty batch it must still step on, and the gathered
    validation covers the whole split."""
    import shutil

    from avaudit.training.split import split_train_val, training_labels

    data = tmp_path / "dirty"
    shutil.copytree(planted, data)
    for category in ("audio_tone200", "visual_red_square", "onset_tone1030_green_diamond", "cont_tone420_blue_cross",
                     "instant_tone690_purple_square"):
        (data / category / "zz_broken.mp4").write_bytes(b"")
    table = read_manifest(data).table
    train_idx, val_idx = split_train_val(table.assign(label=training_labels(table["labels"], seed=0)),
                                         fraction=0.2, seed=0)
    broken = set(np.flatnonzero(table["path"].str.endswith("zz_broken.mp4")))
    assert (len(train_idx), len(val_idx), len(broken & set(train_idx))) == (25, 16, 4)  # as described above

    out = tmp_path / "ddp.pt"
    script = tmp_path / "logged_avaudit.py"
    script.write_text(DECODE_LOG)
    logs = tmp_path / "decodes"
    logs.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DECODE_LOG": str(logs)}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
         str(script), "train", str(data), "--preset", str(tiny_preset), "--out", str(out), "--device", "cpu",
         "--memory-budget", "0", "--workers", "1"],
        capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]  # 1: some clips skipped
    saved = load_checkpoint(out)
    assert saved["recipe"]["done"] and len(saved["metrics"]["history"]) == 3
    assert "validation accuracy" in result.stdout and result.stdout.count("model written to") == 1
    assert "streaming" in result.stderr + result.stdout
    skipped = pd.read_csv(tmp_path / "ddp.pt.skipped.csv")
    assert sorted(skipped["path"]) == sorted(table["path"].iloc[sorted(broken)])
    assert set(skipped["reason"]) == {"unreadable container"}
    final = saved["metrics"]["final"]
    assert (final["n_train"], final["n_val"]) == (21, 15)  # every rank's validation share, gathered

    decoded = {rank: pd.read_csv(logs / f"rank{rank}.txt", sep=" ", names=["parts", "row"], dtype={"parts": str})
               for rank in (0, 1)}
    # audio stage: sound only; video stage: frames only; joint stage: everything (the final evaluation
    # reuses the joint stage's last validation)
    assert set(decoded[0]["parts"]) == set(decoded[1]["parts"]) == {"010", "100", "111"}
    for parts, expected in (("010", set(range(len(table)))), ("100", set(range(len(table))) - broken),
                            ("111", set(range(len(table))) - broken)):
        rows = [decoded[rank].loc[decoded[rank]["parts"] == parts, "row"].tolist() for rank in (0, 1)]
        assert len(set(rows[0])) == len(rows[0]) and len(set(rows[1])) == len(rows[1])  # once per rank
        assert not set(rows[0]) & set(rows[1])  # disjoint shares
        assert sorted(rows[0] + rows[1]) == sorted(expected)  # together, every row once


KILL_AT = """
import os, signal, sys
from avaudit import display

progress = display.TrainProgress.__call__


def killed(self, kind, info):  # kill -9 at one batch, after its step, before anything saves it
    progress(self, kind, info)
    if kind == "batch" and (info["stage"], info["epoch"], info["batch"]) == ("video", 1, 2):
        os.kill(os.getpid(), signal.SIGKILL)


display.TrainProgress.__call__ = killed
from avaudit.cli import main

sys.argv[0] = "avaudit"
main()
"""


@pytest.mark.slow
def test_kill_minus_9_mid_epoch_then_resume_ends_like_an_uninterrupted_run(planted, tiny_preset, tmp_path):
    """A real SIGKILL in the middle of an epoch (the video stage's second, at its third batch, after a
    checkpoint at its second); --resume continues from that batch and ends with the uninterrupted
    run's weights and figures, byte for byte."""
    import signal

    import yaml

    epochs = [1, 2, 2]
    config = load_config(tiny_preset, {"train.epochs": epochs})
    table = read_manifest(planted).table
    full = train(table, config=config, out=tmp_path / "full.pt", device="cpu")

    data = yaml.safe_load(tiny_preset.read_text())
    data["train"].update(epochs=epochs, num_workers=1)  # real decoding workers in the killed process
    preset = tmp_path / "tiny.yaml"  # same preset name, so --resume accepts the checkpoint
    preset.write_text(yaml.safe_dump(data))
    out = tmp_path / "killed.pt"
    script = tmp_path / "kill_at.py"
    script.write_text(KILL_AT)
    command = ["--preset", str(preset), "--out", str(out), "--device", "cpu", "--memory-budget", "0"]
    killed = subprocess.run([sys.executable, str(script), "train", str(planted), *command, "--checkpoint-steps", "2"],
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    cut = load_checkpoint(out)  # the file a kill left behind is whole
    assert (cut["recipe"]["stage"], cut["recipe"]["epoch"], cut["recipe"]["step"]) == (1, 1, 2)
    assert not cut["recipe"]["done"] and len(cut["metrics"]["history"]) == 2
    resumed = subprocess.run([sys.executable, "-m", "avaudit", "train", str(planted), *command, "--resume"],
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = load_checkpoint(out)
    assert final["metrics"]["final"]["val"] == full["val"]
    reference = load_checkpoint(tmp_path / "full.pt")
    for key, value in reference["model"].items():
        torch.testing.assert_close(final["model"][key], value, rtol=0, atol=0)
    pd.testing.assert_frame_equal(history_without_timing(final["metrics"]["history"]),
                                  history_without_timing(reference["metrics"]["history"]))
    history = pd.read_csv(tmp_path / "train_history.csv")
    assert history["stage"].tolist() == ["audio", "video", "video", "joint", "joint"]


def test_training_refuses_when_every_clip_was_skipped_and_writes_no_model(tiny_preset, tmp_path):
    for label in ("dog", "cat"):
        for i in range(2):
            (tmp_path / "data" / label).mkdir(parents=True, exist_ok=True)
            (tmp_path / "data" / label / f"{i}.mp4").write_text("not a video")
    result = cli("train", tmp_path / "data", "--preset", tiny_preset, "--out", tmp_path / "m.pt", "--device", "cpu")
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == ("error: no clip to train on: 4 of 4 clips were skipped (4 unreadable "
                                              "container); no model written")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


@pytest.mark.slow
def test_categories_without_a_validation_clip_are_named_and_their_accuracy_shown_as_na(planted, tiny_preset,
                                                                                       tmp_path):
    for folder in sorted(p for p in planted.iterdir() if p.is_dir())[:2]:  # one clip of each of two categories
        (tmp_path / "data" / folder.name).mkdir(parents=True)
        (tmp_path / "data" / folder.name / "a.mp4").symlink_to(sorted(folder.glob("*.mp4"))[0])
    names = sorted(p.name for p in (tmp_path / "data").iterdir())
    result = cli("train", tmp_path / "data", "--preset", tiny_preset, "--out", tmp_path / "m.pt", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert (f"warning: 2 of 2 categories have no validation clip (one needs 2 or more clips that decode to hold one "
            f"out): {names[0]}, {names[1]}; their accuracy is not measured (n/a); with no validation clip at all, "
            f"every accuracy is NaN, the learning rate never drops and the temperatures stay 1") in result.output
    assert "validation accuracy (0 clips held out, 2 trained on)" in result.output
    width = max(len(name) for name in names)
    for name in (*names, "all"):  # each category keeps its row, not measured
        assert f"│ {name:<{width}} │        n/a │     n/a │   n/a │    n/a │   n/a │  n/a │" in result.output
    assert "nan" not in result.output


def test_train_reads_manifests_as_the_audits_do_with_classes_and_outside_root(tmp_path, monkeypatch):
    """`train` takes the audits' --classes (an AudioSet class index not beside DATA) and
    --allow-outside-root, so a set the audits read, train reads the same."""
    import shutil
    from pathlib import Path

    from avaudit.training import recipe

    data = Path(__file__).parent / "data" / "manifests"
    seen = {}

    def caught(table, **_):
        seen["table"] = table
        raise SystemExit(3)

    monkeypatch.setattr(recipe, "run_recipe", caught)
    lists, index = tmp_path / "lists", tmp_path / "index"
    lists.mkdir(), index.mkdir()
    segments = shutil.copyfile(data / "audioset_eval_segments_head40.csv", lists / "segments.csv")
    names = shutil.copyfile(data / "class_labels_indices.csv", index / "names.csv")
    (lists / "--BfvyPmVMo_20.000_30.000.mp4").write_bytes(b"")  # one row's file; the others are missing
    for extra, label in (([], "/m/03l9g"), (["--classes", str(names)], "Hammer")):  # no index: the label ids
        result = cli("train", segments, *extra, "--out", tmp_path / "m.pt")
        assert result.exit_code == 3, result.output
        assert seen.pop("table").set_index("video_id").loc["--BfvyPmVMo_20_30", "labels"] == label

    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "a.mp4").write_bytes(b"")
    (lists / "l.csv").write_text("path,label\n../elsewhere/a.mp4,dog\n")
    assert cli("train", lists / "l.csv", "--out", tmp_path / "m.pt").exit_code == 3
    assert seen.pop("table").empty  # the only row is outside the root: skipped
    result = cli("train", lists / "l.csv", "--allow-outside-root", "--out", tmp_path / "m.pt")
    assert result.exit_code == 3, result.output
    assert seen["table"]["path"].tolist() == [str(tmp_path / "elsewhere" / "a.mp4")]
