"""Acceptance: no command changes a file it reads. Every input (the manifests, their media, the model,
the class index, the truth files) is hashed before and after each command, on small real data."""
import hashlib
import shutil
from pathlib import Path

import pytest
from cli_helpers import cli

MANIFESTS = Path(__file__).parent / "data" / "manifests"


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` by relative path, with the sha256 of its bytes: a changed, added or
    removed file all show."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def inputs(planted, tiny_model, tmp_path):
    """A folder holding only inputs: a path,label manifest of four planted clips, an AudioSet segments
    CSV with its class index and one clip, the model, and AVVP truth files."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    lines = ["path,label"]
    for clip in [*sorted(planted.glob("*/*.mp4"))[:2], *sorted(planted.glob("*/*.mp4"))[-2:]]:
        copy = shutil.copyfile(clip, folder / f"{clip.parent.name}_{clip.name}")
        lines.append(f"{copy},{clip.parent.name}")
    (folder / "list.csv").write_text("\n".join(lines) + "\n")
    shutil.copyfile(MANIFESTS / "audioset_eval_segments_head40.csv", folder / "segments.csv")
    shutil.copyfile(MANIFESTS / "class_labels_indices.csv", folder / "classes.csv")
    shutil.copyfile(sorted(planted.glob("*/*.mp4"))[0], folder / "--BfvyPmVMo_20.000_30.000.mp4")
    shutil.copyfile(tiny_model, folder / "model.pt")
    first = Path(lines[1].split(",")[0]).stem
    # named as bias's own outputs, so that a bias run with --out here would write over them
    for name, label in (("bias_truth.csv", lines[1].split(",")[1]), ("bias_truth_categories.csv", lines[3].split(",")[1])):
        (folder / name).write_text(f"filename\tonset\toffset\tevent_labels\n{first}\t0\t10\t{label}\n")
    return folder


@pytest.mark.slow  # eight commands end to end; test_inputs_are_never_outputs keeps the refusals fast
def test_no_command_changes_a_file_it_reads(inputs, tmp_path, monkeypatch):
    monkeypatch.setenv("AVAUDIT_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    audit = ["--model", inputs / "model.pt", "--device", "cpu", "--workers", "0"]
    keep = ["--keep", "audiovisual", "--keep", "audio", "--keep", "visual", "--keep", "redundant"]
    truth = ["--truth-audio", inputs / "bias_truth.csv", "--truth-visual", inputs / "bias_truth_categories.csv"]
    refused = [  # outputs named on inputs: each refused before any work
        ["bias", inputs / "list.csv", "--out", inputs, *truth, *audit],
        ["predict", inputs / "segments.csv", "--classes", inputs / "classes.csv", "--export-probs",
         inputs / "classes.csv", *audit],
        ["predict", inputs / "list.csv", "--out", out / "refused", "--export-probs", inputs / "model.pt", *audit],
    ]
    commands = [
        ["bias", inputs / "list.csv", "--out", out / "bias", *truth, *audit],
        ["predict", inputs / "list.csv", "--out", out / "predict", "--export-probs", out / "probs.npz", *audit],
        ["predict", inputs / "segments.csv", "--classes", inputs / "classes.csv", "--out", out / "audioset", *audit],
        ["missing-labels", inputs / "list.csv", "--out", out / "missing", *audit],
        ["retarget", inputs / "list.csv", *keep, "--out", out / "retarget" / "subset.csv", *audit],
        ["retarget", "--from", out / "bias", *keep, "--out", out / "from_run" / "subset.csv"],
        ["localize", sorted(inputs.glob("*.mp4"))[1], "--model", inputs / "model.pt", "--out", out / "localize",
         "--timeline"],
        ["report", out],
    ]
    before = tree_digest(inputs)
    assert len(before) == 11
    for command in [*refused, *commands]:
        result = cli(*command)
        assert result.exit_code in ((2,) if command in refused else (0, 1)), (command, result.output)
        assert isinstance(result.exception, (SystemExit, type(None))), (command, result.exception)
        assert tree_digest(inputs) == before, command
    assert (out / "report.html").is_file() and (out / "probs.npz").is_file()
