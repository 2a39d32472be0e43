"""Installing avaudit: the shipped model travels as package data; pins and constraints agree."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

import avaudit
from avaudit.commands import DEFAULT_MODEL

REPO = Path(__file__).resolve().parent.parent


def test_the_default_model_is_package_data():
    assert DEFAULT_MODEL == Path(avaudit.__file__).resolve().parent / "models" / "default.pt"
    assert DEFAULT_MODEL.is_file()
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "models/default.pt" in package_data["avaudit"]


@pytest.mark.slow
def test_a_built_wheel_ships_the_model_and_an_install_of_it_finds_it(tmp_path):
    """`pip wheel` the sources (copied, so the build leaves nothing in the checkout), then install that
    wheel into a new virtual environment (dependencies from this one) and ask it for its default model."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "avaudit", source / "avaudit", ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", str(source),
                            "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = (tmp_path / "dist").glob("avaudit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "avaudit/models/default.pt" in names
    assert "avaudit/models/README.md" in names
    assert "avaudit/presets/small.yaml" in names
    assert zipfile.ZipFile(wheel).read("avaudit/models/default.pt") == DEFAULT_MODEL.read_bytes()

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                              str(wheel)], capture_output=True, text=True, env=clean, timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr
    probe = subprocess.run(
        [str(python), "-c", "from avaudit.commands import DEFAULT_MODEL as m; "
         "from avaudit.model.checkpoint import load_checkpoint; "
         "print(m); print(load_checkpoint(m)['classes'][0])"],
        capture_output=True, text=True, env=clean, cwd=tmp_path, timeout=600)
    assert probe.returncode == 0, probe.stderr
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, env=clean).stdout.strip()
    assert probe.stdout.splitlines() == [str(Path(site) / "avaudit" / "models" / "default.pt"), "audio_tone1450"]
