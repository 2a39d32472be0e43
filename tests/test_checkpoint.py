import collections

import pytest
import torch
from cli_helpers import invoke

from avaudit.model.checkpoint import CheckpointError, load_checkpoint, load_network


class Payload:
    """Stands for arbitrary pickled code inside a checkpoint."""

    def __reduce__(self):
        return (print, ("this ran while loading",))


def test_a_checkpoint_carrying_pickled_code_is_refused(tiny_model, tmp_path):
    data = torch.load(tiny_model, weights_only=True)
    data["extra"] = Payload()
    path = tmp_path / "evil.pt"
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="evil.pt: .*pickled objects other than tensors"):
        load_checkpoint(path)


def test_a_truncated_checkpoint_is_refused(tiny_model, tmp_path):
    path = tmp_path / "cut.pt"
    path.write_bytes(tiny_model.read_bytes()[: tiny_model.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cut.pt: .*unreadable or truncated"):
        load_checkpoint(path)


def test_weights_made_for_another_preset_are_refused(tiny_model, tmp_path):
    data = torch.load(tiny_model, weights_only=True)
    data["config"]["preset"] = "paper"
    data["config"]["model"] = {}  # the paper network's defaults: its shapes do not fit tiny weights
    path = tmp_path / "mixed.pt"
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="mixed.pt: weights do not fit preset 'paper'"):
        load_network(path)
    with pytest.raises(CheckpointError, match="made with preset 'tiny', not 'small'"):
        load_checkpoint(tiny_model, preset="small")


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(collections.OrderedDict(w=torch.zeros(2)), path)
    with pytest.raises(CheckpointError, match="not an avaudit checkpoint"):
        load_checkpoint(path)


TAMPERED = [
    ("classes", "dog", "'classes' is not a list of distinct category names"),
    ("classes", ["dog", "dog"], "'classes' is not a list of distinct category names"),
    ("config", None, "'config' is not a mapping"),
    ("config", {"model": {"crop": "big"}}, "'config.model.crop' is 'big', not a value of its kind"),
    ("config", {"model": {"video_widths": [4, "x"]}}, "'config.model.video_widths' is [4, 'x'], not a value of its kind"),
    ("config", {"model": {"wings": 2}}, "'config' does not describe a network (unknown ModelConfig field(s): wings)"),
    ("temperatures", [1.0, 2.0], "'temperatures' is not five positive numbers, one per layer"),
    ("model", {"w": [1, 2]}, "'model' is not a mapping of parameter names to tensors"),
    ("model", None, "'model' is not a mapping of parameter names to tensors"),
]


@pytest.mark.parametrize("key, value, why", TAMPERED)
def test_a_checkpoint_with_the_tag_but_wrong_contents_is_refused_naming_the_file(tiny_model, tmp_path, key, value,
                                                                                  why):
    data = torch.load(tiny_model, weights_only=True)
    if value is None:
        del data[key]
    else:
        data[key] = value
    path = tmp_path / "tampered.pt"
    torch.save(data, path)
    with pytest.raises(CheckpointError) as error:
        load_network(path)
    assert str(error.value) == f"{path}: not a usable avaudit checkpoint: {why}"


def test_a_checkpoint_whose_config_builds_no_network_is_one_line_from_the_cli(planted, tiny_model, tmp_path):
    data = torch.load(tiny_model, weights_only=True)
    data["config"]["model"]["audio_widths"] = [4]  # the right kind, but no network has one audio conv
    path = tmp_path / "odd.pt"
    torch.save(data, path)
    result = invoke("bias", planted, "--model", path, "--out", tmp_path / "o", "--cache-dir", tmp_path / "c")
    assert result.exit_code == 2
    assert result.output.splitlines()[-1].startswith(f"error: {path}: its config does not build a network (")
    data = torch.load(tiny_model, weights_only=True)
    data["recipe"] = {"stage": "two"}
    torch.save(data, path)
    with pytest.raises(CheckpointError, match=r"odd.pt: not a usable avaudit checkpoint: 'recipe' does not say "
                                              r"where training stopped \(stage, epoch, done\)$"):
        load_checkpoint(path, preset="tiny")


def test_a_changed_copy_of_the_fields_in_the_cache_is_not_trusted(tiny_model, tmp_path):
    import json

    from avaudit.inference.cache import model_fingerprint
    from avaudit.inference.logits import checkpoint_info

    first = checkpoint_info(tiny_model, tmp_path)
    copy = tmp_path / model_fingerprint(tiny_model) / "checkpoint.json"
    copy.write_text(json.dumps({**first, "classes": 7}))
    assert checkpoint_info(tiny_model, tmp_path) == first
