"""The Python API as README shows it: `import avaudit` and call the commands."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

import avaudit

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_python_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1, "README has one Python example"
    return blocks[0]


def test_the_api_exports_the_commands_and_nothing_is_imported_until_used():
    assert set(avaudit.__all__) == {"bias", "predict", "missing_labels", "retarget", "quality", "train", "load_model",
                                    "AuditOptions", "Thresholds", "AuditRun", "AvauditError", "UsageError",
                                    "ParameterError", "NotRankZero"}
    assert all(getattr(avaudit, name).__doc__ for name in avaudit.__all__)
    code = "import sys, avaudit; print(sorted(m for m in ('torch', 'numpy', 'pandas') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout == "[]\n"
    with pytest.raises(AttributeError, match="module 'avaudit' has no attribute 'nothing'"):
        avaudit.nothing


@pytest.mark.slow
def test_readme_python_example_runs(planted, tmp_path, monkeypatch):
    """README's example, on the small planted set (same categories as sample_videos/)."""
    monkeypatch.chdir(tmp_path)
    code = readme_python_example().replace('"sample_videos/"', repr(str(planted)))
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert list(namespace["categories"].columns[:3]) == ["category", "layer", "group"]
    assert len(namespace["categories"]) == 16
    assert set(namespace["candidates"].columns) >= {"video_id", "candidate", "layer", "confidence"}
    subset = namespace["subset"]
    assert isinstance(subset, avaudit.AuditRun) and subset.summary.bias_run == "avaudit-out/bias"
    assert (tmp_path / "avaudit-out" / "retarget" / "subset.csv").is_file()


@pytest.mark.slow  # a whole run; the fast tier keeps a cheaper test of the same path
def test_options_as_keywords_or_as_one_object_give_the_same_run(planted, tiny_model, tmp_path):
    by_keyword = avaudit.predict(planted, model=tiny_model, device="cpu", workers=0, out=tmp_path / "a")
    options = avaudit.AuditOptions(model=tiny_model, device="cpu", workers=0)
    by_object = avaudit.predict(planted, options=options, out=tmp_path / "b")
    assert (tmp_path / "a" / "predictions.csv").read_bytes() == (tmp_path / "b" / "predictions.csv").read_bytes()
    assert by_keyword.n_rows == by_object.n_rows == 36
    with pytest.raises(TypeError):
        avaudit.predict(planted, modle=tiny_model)


@pytest.mark.parametrize("command, arguments, message", [
    ("bias", {"fraction": "0.9"}, "fraction must be a number, not '0.9'"),
    ("bias", {"fraction": 2}, "fraction must be in (0, 1], not 2"),
    ("bias", {"type_margin": "x"}, "type_margin must be a number, not 'x'"),
    ("bias", {"type_margin": -1}, "type_margin must be in [0, 1], not -1"),
    ("bias", {"rule": "best"}, "rule must be one of paper, sufficiency, not 'best'"),
    ("bias", {"model": 123}, "model must be a path (str or Path), not 123"),
    ("predict", {"batch_size": "8"}, "batch_size must be an integer of 1 or more, not '8'"),
    ("predict", {"batch_size": True}, "batch_size must be an integer of 1 or more, not True"),
    ("predict", {"batch_size": 0}, "batch_size must be 1 or more, not 0"),
    ("predict", {"workers": -1}, "workers must be 0 or more, not -1"),
    ("predict", {"device": "tpu"}, "device must be one of auto, cpu, cuda, not 'tpu'"),
    ("predict", {"no_audio": "maybe"}, "no_audio must be one of skip, silence, not 'maybe'"),
    ("predict", {"confidence": "high"}, "confidence must be one of raw, calibrated, not 'high'"),
    ("predict", {"allow_outside_root": "yes"}, "allow_outside_root must be True or False, not 'yes'"),
    ("missing_labels", {"min_confidence": 1.5}, "min_confidence must be in [0, 1], not 1.5"),
    ("missing_labels", {"max_confusion": "0.1"}, "max_confusion must be a number, not '0.1'"),
    ("bias", {"min_support": 1.5}, "min_support must be in [0, 1], not 1.5"),
    ("missing_labels", {"min_precision": -0.1}, "min_precision must be in [0, 1], not -0.1"),
    ("bias", {"truth": ["a.csv", "b.csv", "c.csv"]}, "truth takes one VGGSounder CSV (or 'vggsounder'), or AVVP's "
                                                     "audio and visual event files, not 3 files"),
    ("missing_labels", {"truth": 5}, "truth must be a path, 'vggsounder' or a list of two paths, not 5"),
    ("retarget", {"keep": "audio"}, "keep must be a list of group or layer names"),
    ("retarget", {"keep": ["audio"], "by": "row"}, "by must be one of category, video, not 'row'"),
])
def test_the_api_refuses_a_wrong_argument_at_the_door_in_the_caller_s_terms(command, arguments, message, tmp_path):
    """Before anything is read: DATA here does not exist, which reading it first would say instead."""
    with pytest.raises(avaudit.ParameterError if command != "retarget" or "by" in arguments
                       else avaudit.UsageError) as error:
        getattr(avaudit, command)(tmp_path / "no such data", out=tmp_path / "out", **arguments)
    assert str(error.value).startswith(message) and "--" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_the_cli_names_the_flag_where_the_api_names_the_parameter(tmp_path):
    from cli_helpers import cli

    result = cli("bias", str(tmp_path), "--sufficiency", "2")
    assert result.exit_code == 2 and result.output == "error: --sufficiency must be in (0, 1], not 2\n"
    result = cli("predict", str(tmp_path), "--batch-size", "0")
    assert result.exit_code == 2 and result.output == "error: --batch-size must be 1 or more, not 0\n"


def test_not_rank_zero_is_public_for_callers_under_torchrun():
    from avaudit.errors import NotRankZero
    from avaudit.inference.pipeline import run_shard

    assert avaudit.NotRankZero is NotRankZero and "NotRankZero" in run_shard.__doc__


def test_calibrated_confidence_needs_fitted_temperatures_said_in_the_caller_s_terms():
    from avaudit.display import flag
    from avaudit.inference.pipeline import check_confidence

    check_confidence({"temperatures": [1.0] * 5}, "calibrated")
    check_confidence({}, "raw")
    with pytest.raises(avaudit.ParameterError, match=r"^confidence calibrated: this checkpoint has no fitted "
                                                     r"temperatures .*; retrain it or use raw confidences$") as error:
        check_confidence({}, "calibrated")
    assert flag(error.value.parameter) == "--confidence"
