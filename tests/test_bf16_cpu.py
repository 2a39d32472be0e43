"""The GPU's bf16 autocast path, forced on the CPU (AVAUDIT_CPU_AUTOCAST=1, avaudit/device.py):
training steps of every stage, a resume from the middle of an epoch, and the audits, so that a dtype
or shape error on that path shows on every CI run, not on the first lent GPU (issue 21, item 26)."""
import numpy as np
import pandas as pd
import pytest
import torch

from avaudit.config import load_config
from avaudit.device import autocast
from avaudit.media.manifests import read_manifest
from avaudit.model.checkpoint import load_checkpoint
from avaudit.model.fusion import FusionNet


class Interrupt(Exception):
    pass


def test_the_switch_turns_bf16_autocast_on_for_the_cpu_only_when_set(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv("AVAUDIT_CPU_AUTOCAST", raising=False)
    with autocast(cpu):
        assert not torch.is_autocast_enabled("cpu")
    monkeypatch.setenv("AVAUDIT_CPU_AUTOCAST", "1")
    with autocast(cpu):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


@pytest.fixture
def forwards(monkeypatch):
    """Every FusionNet forward pass, as (autocast on, its dtype, use_video, use_audio)."""
    seen = []
    forward = FusionNet.forward

    def recorded(self, *args, **kwargs):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"),
                     kwargs.get("use_video", True), kwargs.get("use_audio", True)))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(FusionNet, "forward", recorded)
    return seen


@pytest.mark.slow
def test_training_a_resume_and_the_audits_run_under_bf16_autocast_on_the_cpu(planted, tiny_preset, tmp_path,
                                                                             monkeypatch, forwards):
    import avaudit
    from avaudit.training.recipe import run_recipe

    monkeypatch.setenv("AVAUDIT_CPU_AUTOCAST", "1")
    data = tmp_path / "data"
    for folder in sorted(p for p in planted.iterdir() if p.is_dir())[:3]:  # three categories, two clips each
        (data / folder.name).mkdir(parents=True)
        for clip in sorted(folder.glob("*.mp4"))[:2]:
            (data / folder.name / clip.name).symlink_to(clip)
    table = read_manifest(data).table
    config = load_config(tiny_preset, {"train.epochs": [1, 1, 2], "train.batch_size": 2,
                                       "train.checkpoint_steps": 1, "train.memory_budget": 0})
    out = tmp_path / "bf16.pt"

    def stop_in_the_joint_stage(kind, info):
        if kind == "batch" and (info["stage"], info["epoch"], info["batch"]) == ("joint", 1, 1):
            raise Interrupt

    with pytest.raises(Interrupt):
        run_recipe(table, config=config, out=out, device="cpu", on_event=stop_in_the_joint_stage)
    cut = load_checkpoint(out)["recipe"]
    assert (cut["stage"], cut["epoch"], cut["step"]) == (2, 1, 1) and not cut["done"]
    result = run_recipe(table, config=config, out=out, device="cpu", resume=True)
    saved = load_checkpoint(out)
    assert saved["recipe"]["done"] and [h["stage"] for h in saved["metrics"]["history"]] == \
        ["audio", "video", "joint", "joint"]
    assert all(value.dtype != torch.bfloat16 for value in saved["model"].values())  # autocast keeps fp32 weights
    assert all(torch.isfinite(value).all() for value in saved["model"].values() if value.is_floating_point())
    assert np.isfinite(pd.DataFrame(saved["metrics"]["history"])["loss"]).all() and result["n_val"] == 3
    assert {(video, audio) for _, _, video, audio in forwards} == {(False, True), (True, False), (True, True)}
    assert all(on and dtype == torch.bfloat16 for on, dtype, _, _ in forwards)

    forwards.clear()
    predicted = avaudit.predict(data, model=out, device="cpu", workers=0, batch_size=4, out=tmp_path / "predict",
                                cache_dir=tmp_path / "cache")
    assert predicted.n_rows == 6 and len(predicted.skipped) == 0
    probabilities = predicted.tables["predictions.csv"].select_dtypes("number")
    assert np.isfinite(probabilities.to_numpy()).all()
    bias = avaudit.bias(data, model=out, device="cpu", workers=0, out=tmp_path / "bias",
                        cache_dir=tmp_path / "cache2")
    assert len(bias.tables["bias_videos.csv"]) == 6
    assert forwards and all(on and dtype == torch.bfloat16 for on, dtype, _, _ in forwards)
