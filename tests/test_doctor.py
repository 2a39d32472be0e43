"""avaudit doctor: every check passes on a working install, and a broken one is named with its fix."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from cli_helpers import cli

from avaudit import doctor
from avaudit.doctor import LOCK, Check

REPO = Path(__file__).resolve().parent.parent
NUMPY = metadata.version("numpy")


def run_doctor(*args: str, pythonpath: list[Path] = ()) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "avaudit", "doctor", *args], capture_output=True, text=True,
                          env=env, timeout=900)


def test_libraries_names_a_version_outside_the_requirement_and_its_fix():
    check = doctor.check_libraries(["numpy<1"], {"numpy": "2.4.6"})
    assert check == Check("libraries", False, f"numpy {NUMPY} is installed; avaudit needs numpy<1",
                          f"pip install -c {LOCK} 'numpy==2.4.6'")


def test_libraries_names_a_missing_library():
    check = doctor.check_libraries(["no-such-library-avaudit==1.0", "numpy"], {})
    assert check == Check("libraries", False,
                          "no-such-library-avaudit is not installed (avaudit needs no-such-library-avaudit==1.0)",
                          "pip install 'no-such-library-avaudit==1.0'")


def test_libraries_pass_and_report_drift_from_the_lock():
    check = doctor.check_libraries(["numpy>=2"], {"numpy": "1.0.0"})
    assert check == Check("libraries", True,
                          f"1 direct and 0 further libraries at allowed versions (numpy {NUMPY}); 1 differ from constraints.txt, which the tests ran with: "
                          f"numpy {NUMPY} (pinned 1.0.0) (pip install -c {LOCK} <name>==<pin> aligns one)", "")


def test_cache_dir_that_cannot_be_made_is_a_problem(tmp_path):
    (tmp_path / "file").write_text("")
    target = tmp_path / "file" / "cache"
    assert doctor.check_cache_dir(target) == Check(
        "cache directory", False, f"{target}: Not a directory",
        f"make {target} writable, or give a writable folder with --cache-dir or AVAUDIT_CACHE_DIR")
    assert doctor.check_cache_dir(tmp_path / "new").ok and not any((tmp_path / "new").iterdir())


def test_a_check_that_raises_is_a_failed_check(monkeypatch):
    def check_model(model):
        raise RuntimeError("boom")

    assert doctor.guarded(check_model, None) == Check("model", False, "RuntimeError: boom", doctor.REINSTALL_AVAUDIT)


def test_cli_exits_1_with_one_fix_line_per_problem(monkeypatch):
    checks = [Check("libraries", True, "all pinned", ""), Check("decord", False, "decoding x.mp4: it broke",
                                                                 "pip install decord==0.6.0"),
              Check("GPU", False, "no bf16", "use --device cpu")]
    monkeypatch.setattr(doctor, "run_checks", lambda **kwargs: checks)
    result = cli("doctor")
    assert result.exit_code == 1
    assert result.output.splitlines()[1:] == [
        "ok    libraries  all pinned",
        "FAIL  decord     decoding x.mp4: it broke",
        "                 fix: pip install decord==0.6.0",
        "FAIL  GPU        no bf16",
        "                 fix: use --device cpu",
        "2 of 3 checks failed: decord, GPU",
    ]


def test_cli_passes_the_cache_dir_and_model_and_exits_0(monkeypatch, tmp_path):
    seen = {}

    def fake(**kwargs):
        seen.update(kwargs)
        return [Check("libraries", True, "all pinned", "")]

    monkeypatch.setattr(doctor, "run_checks", fake)
    result = cli("doctor", "--cache-dir", tmp_path, "--model", "m.pt")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1:] == ["ok    libraries  all pinned", "all 1 checks passed"]
    assert seen == {"cache_dir": tmp_path, "model": Path("m.pt")}


@pytest.mark.slow
def test_doctor_passes_on_a_working_install(tmp_path):
    result = run_doctor("--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (f"avaudit doctor: Python {sys.version.split()[0]} ({sys.executable}), avaudit in "
                        f"{REPO / 'avaudit'}")
    assert [line.split()[:2] for line in lines[1:-1]] == [
        ["ok", "libraries"], ["ok", "decord"], ["ok", "PyAV"], ["ok", "onsets"], ["ok", "model"], ["ok", "cache"],
        ["ok", "GPU"]]
    assert lines[4] == ("ok    onsets           five planted clicks found at steps [5, 20, 33, 67, 91], "
                        "no JIT compiler loaded")
    assert lines[5] == f"ok    model            {REPO / 'avaudit' / 'weights' / 'default.pt'}: preset small, 16 classes"
    assert re.fullmatch(rf"ok    cache directory  {re.escape(str(tmp_path / 'cache'))}: writable, [0-9.]+ GiB free",
                        lines[6])
    assert lines[-1] == "all 7 checks passed"


@pytest.mark.slow
def test_doctor_names_a_decoder_that_breaks_on_import(tmp_path):
    """A decord whose import raises (a stub ahead of the real one on PYTHONPATH): only decord fails."""
    stub = tmp_path / "stub" / "decord"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('raise ImportError("libdecord.so: cannot open shared object file")\n')
    result = run_doctor("--cache-dir", str(tmp_path / "cache"), pythonpath=[tmp_path / "stub"])
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    decord = lines.index("FAIL  decord           decoding torchcodec_nasa_13013.mp4: ImportError: libdecord.so: "
                         "cannot open shared object file (only `--decoder decord` needs it)")
    assert lines[decord + 1] == f"                       fix: pip install --force-reinstall --no-deps -c {LOCK} decord==0.6.0"
    assert lines[-1] == "1 of 7 checks failed: decord"


@pytest.mark.slow
def test_doctor_names_a_library_that_crashes_the_process(tmp_path):
    """A PyAV that kills its process (SIGSEGV on import), and a model file that is not a checkpoint."""
    stub = tmp_path / "stub" / "av"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    bad_model = tmp_path / "model.pt"
    bad_model.write_bytes(b"not a checkpoint")
    result = run_doctor("--cache-dir", str(tmp_path / "cache"), "--model", str(bad_model),
                        pythonpath=[tmp_path / "stub"])
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    pyav = lines.index("FAIL  PyAV             decoding torchcodec_nasa_13013.mp4: the process crashed (SIGSEGV)")
    assert lines[pyav + 1] == f"                       fix: pip install --force-reinstall --no-deps -c {LOCK} av==18.1.0"
    model = lines.index(f"FAIL  model            {bad_model}: not a checkpoint (not a file torch.save writes); "
                        "pass the .pt file `avaudit train` wrote")
    assert lines[model + 1] == "                       fix: give --model a checkpoint written by avaudit train"
    assert lines[-1] == "2 of 7 checks failed: PyAV, model"


def test_libraries_skip_requirements_for_other_platforms_and_extras():
    check = doctor.check_libraries(['no-such-library-avaudit==1.0; sys_platform == "win32"',
                                    'numpy>=2; extra == "test"', "numpy>=2"], {})
    assert check == Check("libraries", True, f"1 direct and 0 further libraries at allowed versions (numpy {NUMPY}); "
                                             "no constraints.txt to compare with", "")
