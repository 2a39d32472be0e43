"""Nothing non-finite goes quietly: a checkpoint with NaN weights is refused, a clip whose output is NaN
is skipped as `non-finite output` (and never cached), and a config that cannot describe a network
(steps 0) is refused on load, by the audit and by `doctor`."""
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cli_helpers import invoke
from oddmedia import write_loud_clip

from avaudit.doctor import check_model
from avaudit.inference.cache import LogitCache
from avaudit.inference.logits import logits_fingerprint
from avaudit.model.checkpoint import CheckpointError, load_checkpoint, load_network


def changed_copy(model: Path, path: Path, change) -> Path:
    data = torch.load(model, weights_only=True)
    change(data)
    torch.save(data, path)
    return path


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's overflow warnings on the loud sound
def test_a_clip_whose_output_is_not_finite_is_skipped_and_not_cached(planted, tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("AVAUDIT_CACHE_DIR", str(tmp_path / "cache"))
    quiet = Path(shutil.copyfile(sorted(planted.glob("*/*.mp4"))[0], tmp_path / "quiet.mp4"))
    loud = write_loud_clip(tmp_path / "loud.mkv")
    data = tmp_path / "list.csv"
    label = sorted(planted.glob("*/*.mp4"))[0].parent.name
    data.write_text(f"path,label\n{quiet},{label}\n{loud},{label}\n")
    for run in ("first", "again"):
        result = invoke("predict", data, "--model", tiny_model, "--out", tmp_path / run)
        assert result.exit_code == 1, result.output
        assert "1 of 2 videos skipped (1 non-finite output)" in " ".join(result.output.split())
        skipped = pd.read_csv(tmp_path / run / "predict_skipped.csv")
        assert skipped[["path", "reason"]].values.tolist() == [[str(loud), "non-finite output"]]
        assert pd.read_csv(tmp_path / run / "predictions.csv")["path"].tolist() == [str(quiet)]
    assert "1 of 2 videos read from the cache" in " ".join(result.output.split())
    classes = len(load_checkpoint(tiny_model)["classes"])
    cache = LogitCache(tmp_path / "cache", logits_fingerprint(tiny_model), n_classes=classes)
    assert len(cache) == 1


def test_chunks_holding_non_finite_logits_are_read_as_not_cached(tmp_path):
    cache = LogitCache(tmp_path, "m", n_classes=2)
    logits = np.zeros((3, 5, 2), np.float32)
    logits[1, 2, 0], logits[2, 0, 1] = np.nan, np.inf
    cache.add(np.array(["a", "b", "c"]), logits)
    np.savez(tmp_path / "m" / "chunk-00000000000000000000-1-0.npz", keys=np.array(["d", "e"]),
             logits=logits[1:], seconds=np.ones(2, np.float32))  # as an older version wrote them
    found, _, _ = LogitCache(tmp_path, "m", n_classes=2).lookup(np.array(["a", "b", "c", "d", "e"]))
    assert found.tolist() == [True, False, False, False, False]


def test_a_checkpoint_with_non_finite_weights_is_refused_by_the_audit(planted, tiny_model, tmp_path):
    def poison(data):
        data["model"][sorted(data["model"])[3]].view(-1)[0] = float("nan")

    broken = changed_copy(tiny_model, tmp_path / "nan.pt", poison)
    name = sorted(torch.load(broken, weights_only=True)["model"])[3]
    message = (f"{broken}: not a usable avaudit checkpoint: NaN or infinity in 1 weight tensor ({name}); "
               f"every output would be NaN")
    result = invoke("bias", planted, "--model", broken, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert " ".join(result.output.split()) == f"error: {message}"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("field,value,rule", [("model.steps", 0, "more than 0"), ("model.seconds", -10.0, "more than 0"),
                                              ("model.crop", 0, "more than 0"),
                                              ("model.resize", [32, 0], "more than 0"),
                                              ("model.mean", [0.5, float("nan"), 0.5], "a finite number"),
                                              ("train.patience", -1, "0 or more")])
def test_a_config_field_out_of_its_range_is_refused_on_load(tiny_model, tmp_path, field, value, rule):
    section, name = field.split(".")
    broken = changed_copy(tiny_model, tmp_path / "bad.pt", lambda data: data["config"][section].update({name: value}))
    with pytest.raises(CheckpointError) as error:
        load_network(broken)
    assert str(error.value) == (f"{broken}: not a usable avaudit checkpoint: 'config.{field}' is {value!r}; "
                                f"it must be {rule}")


@pytest.mark.parametrize("field, value", [("steps", 10**9), ("seconds", 1e9), ("sample_rate", 10**9)])
def test_a_config_that_asks_for_huge_clips_is_refused_on_load(tiny_model, tmp_path, field, value):
    """Finite but huge sizes passed the range check and crashed the audit allocating terabytes (adversarial pass)."""
    broken = changed_copy(tiny_model, tmp_path / "huge.pt", lambda data: data["config"]["model"].update({field: value}))
    with pytest.raises(CheckpointError, match=r"not a usable avaudit checkpoint: 'config.model' asks for clips of "
                                              r"[\d,.]+ GiB each .*; at most 2 GiB"):
        load_network(broken)


def test_a_checkpoint_with_zero_steps_is_refused_before_decoding(planted, tiny_model, tmp_path):
    broken = changed_copy(tiny_model, tmp_path / "steps0.pt", lambda data: data["config"]["model"].update(steps=0))
    message = f"{broken}: not a usable avaudit checkpoint: 'config.model.steps' is 0; it must be more than 0"
    result = invoke("predict", planted, "--model", broken, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert " ".join(result.output.split()) == f"error: {message}"


@pytest.mark.slow
def test_doctor_refuses_checkpoints_with_nan_weights_zero_steps_or_weights_of_other_shapes(tiny_model, tmp_path):
    def poison(data):
        data["model"][sorted(data["model"])[0]].view(-1)[0] = float("inf")

    def widen(data):
        data["model"][sorted(data["model"])[0]] = torch.zeros(3, 3)

    for change, why in ((poison, "not a usable avaudit checkpoint: NaN or infinity in 1 weight tensor"),
                        (lambda data: data["config"]["model"].update(steps=0),
                         "not a usable avaudit checkpoint: 'config.model.steps' is 0"),
                        (widen, "weights do not fit preset 'tiny': 1 shapes differ")):
        check = check_model(changed_copy(tiny_model, tmp_path / "bad.pt", change))
        assert not check.ok and check.detail.startswith(f"{tmp_path}/bad.pt: {why}"), check


def test_weights_of_other_shapes_are_named_with_their_shapes(tiny_model, tmp_path):
    def widen(data):
        name = "heads.audio.weight" if "heads.audio.weight" in data["model"] else sorted(data["model"])[-1]
        data["model"][name] = torch.zeros(3, 3)
        data["model"]["extra.weight"] = torch.zeros(1)

    broken = changed_copy(tiny_model, tmp_path / "shapes.pt", widen)
    with pytest.raises(CheckpointError) as error:
        load_network(broken)
    expected = torch.load(tiny_model, weights_only=True)["model"]
    name = "heads.audio.weight" if "heads.audio.weight" in expected else sorted(expected)[-1]
    assert str(error.value) == (f"{broken}: weights do not fit preset 'tiny': 1 shapes differ: {name} (3, 3) where "
                                f"the network has {tuple(expected[name].shape)}; 1 not in the network: extra.weight")


def test_the_shipped_model_still_loads(tmp_path):
    from avaudit.options import DEFAULT_MODEL

    shutil.copyfile(DEFAULT_MODEL, tmp_path / "default.pt")
    assert load_checkpoint(tmp_path / "default.pt")["format"] == "avaudit-checkpoint-1"
