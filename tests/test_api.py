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
    assert set(avaudit.__all__) == {"bias", "predict", "missing_labels", "retarget", "train", "load_model",
                                    "AuditOptions", "AuditRun", "AvauditError", "UsageError"}
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
    assert isinstance(subset, avaudit.AuditRun) and subset.summary["bias_run"] == "avaudit-out/bias"
    assert (tmp_path / "avaudit-out" / "retarget" / "subset.csv").is_file()


def test_options_as_keywords_or_as_one_object_give_the_same_run(planted, tiny_model, tmp_path):
    by_keyword = avaudit.predict(planted, model=tiny_model, device="cpu", workers=0, out=tmp_path / "a")
    options = avaudit.AuditOptions(model=tiny_model, device="cpu", workers=0)
    by_object = avaudit.predict(planted, options=options, out=tmp_path / "b")
    assert (tmp_path / "a" / "predictions.csv").read_bytes() == (tmp_path / "b" / "predictions.csv").read_bytes()
    assert by_keyword.n_rows == by_object.n_rows == 36
    with pytest.raises(TypeError):
        avaudit.predict(planted, modle=tiny_model)
