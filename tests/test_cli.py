import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from cli_helpers import cli, invoke

DESIGN_COMMANDS = ["train", "predict", "bias", "missing-labels", "retarget", "localize", "report", "make-samples",
                   "doctor", "quality"]


@pytest.mark.slow
def test_help_lists_every_command_quickly():
    result = subprocess.run([sys.executable, "-m", "avaudit", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for name in DESIGN_COMMANDS:
        assert name in result.stdout
    imported = subprocess.run([sys.executable, "-c", "import sys, avaudit.cli; print('torch' in sys.modules)"],
                              capture_output=True, text=True)
    assert imported.stdout.strip() == "False"  # heavy imports wait for a command


def test_bias_writes_the_design_files(planted, tiny_model, tmp_path):
    out = tmp_path / "bias"
    result = invoke("bias", planted, "--model", tiny_model, "--out", out)
    assert result.exit_code == 0, result.output
    assert "categories per layer" in result.output
    videos = pd.read_csv(out / "bias_videos.csv")
    assert list(videos.columns) == ["video_id", "path", "label", "layer", "group", "conf_continuous",
                                    "conf_instant", "conf_onset", "conf_visual", "conf_audio", "margin", "clear",
                                    "seconds", "padded", "flags"]
    assert len(videos) == 36
    assert set(videos["layer"]) <= {"continuous", "instant", "onset", "visual", "audio", "redundant", "audiovisual"}
    categories = pd.read_csv(out / "bias_categories.csv")
    assert list(categories.columns[:4]) == ["category", "layer", "group", "n_videos"]
    assert len(categories) == 16 and categories["n_videos"].sum() == 36
    summary = json.loads((out / "bias_summary.json").read_text())
    assert sum(summary["categories_per_layer"].values()) == 16 == summary["total"]
    assert not (out / "bias_skipped.csv").exists()
    settings = yaml.safe_load((out / "bias_run.yaml").read_text())
    assert settings["outputs"] == ["bias_categories.csv", "bias_summary.json", "bias_videos.csv"]
    assert settings["preset"] == "tiny" and settings["model"] == str(tiny_model)


def test_bias_refuses_labels_the_model_does_not_know(tiny_model, tmp_path):
    (tmp_path / "data" / "juggling").mkdir(parents=True)
    (tmp_path / "data" / "juggling" / "a.mp4").write_bytes(b"")
    result = cli("bias", tmp_path / "data", "--model", tiny_model, "--out", tmp_path / "o")
    assert result.exit_code == 2
    assert "'juggling'" in result.output and "train" in result.output
    assert not (tmp_path / "o").exists()


def test_missing_model_is_a_clear_error(planted, tmp_path):
    result = cli("bias", planted, "--model", tmp_path / "none.pt")
    assert result.exit_code == 2 and "none.pt: no such checkpoint" in result.output


def test_train_needs_labels(tmp_path):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.mp4").write_bytes(b"")
    result = cli("train", tmp_path / "flat", "--out", tmp_path / "m.pt")
    assert result.exit_code == 2 and "needs a label" in result.output


def test_train_refuses_to_overwrite_without_resume(planted, tiny_model):
    result = cli("train", planted, "--out", tiny_model)
    assert result.exit_code == 2 and "--resume" in result.output


def test_report_of_a_folder_without_outputs_says_what_to_run(tmp_path):
    result = cli("report", tmp_path)
    assert result.exit_code == 2 and "no avaudit outputs here" in result.output
    assert not (tmp_path / "report.html").exists()


def test_make_samples_refuses_a_full_folder(tmp_path):
    (tmp_path / "x").write_text("taken")
    result = cli("make-samples", tmp_path)
    assert result.exit_code == 2 and "not an empty folder" in result.output


def test_each_audit_option_is_declared_once_and_its_default_is_the_library_s():
    """The options every audit shares come from one declaration (cli.AUDIT_OPTIONS), pass nothing the user did
    not give, and their help reads the library's defaults."""
    import inspect

    from avaudit.cli import AUDIT_OPTIONS, app
    from avaudit.options import THRESHOLDS, AuditOptions

    commands = {c.name or c.callback.__name__: c.callback for c in app.registered_commands}
    declared = {}
    for name in ("bias", "predict", "missing-labels", "retarget", "quality"):
        parameters = inspect.signature(commands[name]).parameters
        assert set(AUDIT_OPTIONS) <= set(parameters), name
        for option, parameter in parameters.items():
            if option in AUDIT_OPTIONS or option in ("rule", "truth"):
                info = parameter.annotation.__metadata__[0]
                assert declared.setdefault(option, info) is info, f"--{option} declared twice"
                assert parameter.default in (None, False), f"{name} --{option} fills in a default"
    assert declared.keys() == {*AUDIT_OPTIONS, "rule", "truth"}
    helps = {option: info.help for option, info in declared.items()}
    assert helps["batch_size"].endswith(f"[default: {AuditOptions.batch_size}].")
    assert f"[default: {THRESHOLDS.rule}]" in helps["rule"]
    own = {option: parameter.annotation.__metadata__[0].help for command in ("bias", "missing-labels")
           for option, parameter in inspect.signature(commands[command]).parameters.items()}
    assert own["min_support"].endswith(f"[default: {THRESHOLDS.min_support:g}].")
    assert own["min_precision"].endswith(f"[default: {THRESHOLDS.min_precision:g}].")
    assert own["min_confidence"].endswith(f"[default: {THRESHOLDS.min_confidence:g}].")
    usage = cli("bias", "--help").output
    assert usage.splitlines()[0].endswith(" bias [OPTIONS] DATA") and "--out OUT" in usage
    assert f"[default: {THRESHOLDS.fraction:g}]" in usage
    for command, argument in (("retarget", "[DATA]"), ("make-samples", "OUT"), ("train", "DATA")):
        assert cli(command, "--help").output.splitlines()[0].endswith(f"[OPTIONS] {argument}")
