"""Installing avaudit: the shipped model travels as package data; pins and constraints agree."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import avaudit
from avaudit.options import DEFAULT_MODEL

REPO = Path(__file__).resolve().parent.parent


def lock() -> dict[str, str]:
    """constraints.txt as {canonical name: version}; every line a comment or NAME==VERSION."""
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.startswith("#"):
            continue
        name, version = line.split("==")
        pins[canonicalize_name(name)] = version
    return pins


def test_constraints_pin_every_direct_requirement_to_a_version_it_allows():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = lock()
    requirements = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]
    for requirement in requirements:
        version = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), f"constraints.txt pins {requirement.name} {version}"
    for name in ("numba", "llvmlite", "numpy", "scipy", "scikit-learn", "joblib", "soundfile", "soxr",
                 "audioread", "torch", "torchvision", "torchaudio"):
        assert name in pins
    assert "avaudit" not in pins and "pip" not in pins


def test_the_package_links_the_constraints_it_ships():
    assert (REPO / "avaudit" / "constraints.txt").read_bytes() == (REPO / "constraints.txt").read_bytes()


def test_the_default_model_is_package_data():
    assert DEFAULT_MODEL == Path(avaudit.__file__).resolve().parent / "weights" / "default.pt"
    assert DEFAULT_MODEL.is_file()
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "weights/default.pt" in package_data["avaudit"]


@pytest.mark.slow
def test_a_built_wheel_ships_the_model_and_an_install_of_it_finds_it(tmp_path):
    """`pip wheel` the sources (copied, so the build leaves nothing in the checkout), then install that
    wheel into a new virtual environment (dependencies from this one) and ask it for its default model."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copy(REPO / "constraints.txt", source / "constraints.txt")  # avaudit/constraints.txt links to it
    shutil.copytree(REPO / "avaudit", source / "avaudit", ignore=shutil.ignore_patterns("__pycache__"),
                    symlinks=True)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", str(source),
                            "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = (tmp_path / "dist").glob("avaudit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "avaudit/weights/default.pt" in names
    assert "avaudit/weights/README.md" in names
    assert "avaudit/presets/small.yaml" in names
    assert {"avaudit/assets/report.js", "avaudit/assets/report.css"} <= set(names)  # the report's page assets
    assert "avaudit/data/torchcodec_nasa_13013.mp4" in names  # avaudit doctor's clip
    assert zipfile.ZipFile(wheel).read("avaudit/constraints.txt") == (REPO / "constraints.txt").read_bytes()
    assert zipfile.ZipFile(wheel).read("avaudit/weights/default.pt") == DEFAULT_MODEL.read_bytes()

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                              str(wheel)], capture_output=True, text=True, env=clean, timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr
    # the dependencies are this environment's: a .pth names its site-packages (system_site_packages would
    # name the base interpreter's, which has no torch on a fresh machine); written after the install, or pip
    # would find this environment's avaudit there and install nothing
    new_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True).stdout.strip()
    Path(new_site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = subprocess.run(
        [str(python), "-c", "from avaudit.options import DEFAULT_MODEL as m; "
         "from avaudit.model.checkpoint import load_checkpoint; "
         "print(m); print(load_checkpoint(m)['classes'][0])"],
        capture_output=True, text=True, env=clean, cwd=tmp_path, timeout=600)
    assert probe.returncode == 0, probe.stderr
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, env=clean).stdout.strip()
    assert probe.stdout.splitlines() == [str(Path(site) / "avaudit" / "weights" / "default.pt"), "audio_tone1450"]


@pytest.mark.slow
def test_every_library_the_package_imports_is_a_runtime_dependency():
    """An import of a test-only library (librosa) or of a transitive one from avaudit/ would pass the
    tests, which install the test extras, and fail on a user's machine."""
    import ast
    from importlib.metadata import packages_distributions

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    providers = packages_distributions()
    imported = set()
    for path in (REPO / "avaudit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = sorted(imported - set(sys.stdlib_module_names) - {"avaudit"})
    undeclared = [m for m in third_party
                  if not {canonicalize_name(d) for d in providers.get(m, [m])} & declared]
    assert undeclared == []
    assert {"torch", "decord", "numpy", "packaging"} <= set(third_party)
