"""Presets as data: loading, overrides, and refusals with a message naming what is wrong."""
import pytest

from avaudit.config import config_from_dict, load_config
from avaudit.errors import UsageError


def test_the_shipped_presets_load_and_differ_where_they_should():
    paper, small = load_config("paper"), load_config("small")
    assert paper.preset == "paper" and small.preset == "small"
    assert paper.model.crop == 112 and paper.model.embed_dim == 512 and paper.model.steps == 100
    assert small.model.crop == 40 and small.train.epochs == (5, 8, 10)
    assert paper.model.fps == 10.0 and paper.model.n_samples == 160000


def test_dotted_overrides_replace_fields_and_lists_become_tuples():
    config = load_config("small", {"train.epochs": [1, 2, 3], "train.seed": 7, "model.crop": 32})
    assert config.train.epochs == (1, 2, 3) and config.train.seed == 7 and config.model.crop == 32


def test_a_yaml_file_is_a_preset_named_after_it(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model:\n  crop: 24\ntrain:\n  lr: 0.5\n")
    config = load_config(path)
    assert config.preset == "mine" and config.model.crop == 24 and config.train.lr == 0.5


def test_unknown_presets_fields_and_shapes_are_refused_by_name(tmp_path):
    with pytest.raises(UsageError, match=r"^no preset or YAML file named 'nope' \(presets: paper, small\)$"):
        load_config("nope")
    with pytest.raises(UsageError, match=r"^unknown ModelConfig field\(s\): colour$"):
        config_from_dict({"model": {"colour": 1}})
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(UsageError, match="a preset must be a mapping with 'model' and 'train' sections$"):
        load_config(tmp_path / "list.yaml")
    with pytest.raises(UsageError, match=r"^model.embed_dim must equal the last video width"):
        load_config("small", {"model.embed_dim": 32})


def test_to_dict_and_back_is_the_same_config():
    config = load_config("paper")
    assert config_from_dict(config.to_dict()) == config
