import collections

import pytest
import torch

from avaudit.model.checkpoint import CheckpointError, load_checkpoint, load_model


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
        load_model(path)
    with pytest.raises(CheckpointError, match="made with preset 'tiny', not 'small'"):
        load_checkpoint(tiny_model, preset="small")


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(collections.OrderedDict(w=torch.zeros(2)), path)
    with pytest.raises(CheckpointError, match="not an avaudit checkpoint"):
        load_checkpoint(path)
