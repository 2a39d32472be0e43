"""`avaudit doctor`: check what a run needs, and say what is wrong and how to fix it.

Each check is a small function returning a Check (name, ok, detail, fix). Everything that loads native
code (decord, PyAV, the onsets, torch for the model and the GPU) runs in a child process, so a library that
crashes on import or on its first call is a failed check, not a dead doctor; the children run at once.
This module imports only the standard library and `packaging` at import time.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import tomllib
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import avaudit

PACKAGE = Path(avaudit.__file__).resolve().parent
CLIP = PACKAGE / "data" / "torchcodec_nasa_13013.mp4"  # package data: a real H.264 + AAC clip
LOCK = PACKAGE / "constraints.txt"  # package data: the pins the tests ran with (constraints.txt)
CHILD_TIMEOUT_S = 300.0


class Check(NamedTuple):
    name: str
    ok: bool
    detail: str  # what was found
    fix: str  # one line that fixes it; empty when ok


# --- the pins ------------------------------------------------------------------------------------------


def declared_requirements() -> list[str]:
    """avaudit's runtime requirements: pyproject.toml beside the package in a source tree, else the
    installed metadata (a wheel or `pip install .`)."""
    pyproject = PACKAGE.parent / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text()).get("project", {})
        if project.get("name") == "avaudit":
            return list(project.get("dependencies", []))
    return [r for r in metadata.requires("avaudit") or [] if "extra ==" not in r]


def read_lock(path: Path = LOCK) -> dict[str, str]:
    """constraints.txt as {canonical name: version}; empty when it is not there."""
    from packaging.utils import canonicalize_name

    pins = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                pins[canonicalize_name(name)] = version.strip()
    return pins


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_libraries(requirements: list[str] | None = None, lock: dict[str, str] | None = None) -> Check:
    """Every library avaudit needs at run time (its requirements and theirs) is installed at a version the
    requirement allows; drift from constraints.txt (what the tests ran with) is reported, not failed."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name

    requirements = declared_requirements() if requirements is None else requirements
    lock = read_lock() if lock is None else lock
    environment = default_environment()
    todo = [(Requirement(r), "avaudit", {""}) for r in requirements]  # (requirement, whose, their extras)
    direct = set()
    seen: dict[str, str] = {}
    problems, fixes = [], []
    while todo:
        requirement, needed_by, extras = todo.pop(0)
        if requirement.marker is not None and not any(
                requirement.marker.evaluate({**environment, "extra": extra}) for extra in extras):
            continue  # another platform's, or an extra's that was not asked for
        name = canonicalize_name(requirement.name)
        if needed_by == "avaudit":
            direct.add(name)
        version = installed_version(requirement.name)
        if version is None:
            problems.append(f"{requirement.name} is not installed ({needed_by} needs {requirement})")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement.name} {version} is installed; {needed_by} needs {requirement}")
        else:
            if name not in seen:
                seen[name] = version
                todo.extend((Requirement(line), requirement.name, {""} | set(requirement.extras))
                            for line in metadata.requires(requirement.name) or [])
            continue
        fixes.append(f"'{requirement.name}=={lock[name]}'" if name in lock else f"'{requirement}'")
    if problems:
        where = f"-c {LOCK} " if lock else ""
        return Check("libraries", False, "; ".join(problems),
                     f"pip install {where}{' '.join(dict.fromkeys(fixes))}")
    drift = [f"{name} {version} (pinned {lock[name]})" for name, version in sorted(seen.items())
             if name in lock and not SpecifierSet(f"=={lock[name]}").contains(version, prereleases=True)]
    known = ", ".join(f"{name} {seen[name]}" for name in ("torch", "decord", "numpy") if name in seen)
    detail = (f"{len(direct)} direct and {len(seen) - len(direct)} further libraries at allowed versions"
              + (f" ({known})" if known else ""))
    if not lock:
        detail += "; no constraints.txt to compare with"
    elif drift:
        detail += (f"; {len(drift)} differ from constraints.txt, which the tests ran with: {', '.join(drift)}"
                   f" (pip install -c {LOCK} <name>==<pin> aligns one)")
    else:
        detail += "; all as constraints.txt pins them"
    return Check("libraries", True, detail, "")


REINSTALL_AVAUDIT = "pip install --force-reinstall --no-deps -c constraints.txt . (in the avaudit repository)"


def reinstall(*names: str) -> str:
    """The pip line that puts back these distributions at their pins."""
    lock = read_lock()
    pins = " ".join(f"{n}=={lock[n]}" if n in lock else n for n in names)
    return f"pip install --force-reinstall --no-deps {f'-c {LOCK} ' if lock else ''}{pins}"


# --- checks in child processes ----------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    """This environment, with avaudit's own folder reachable when it is not installed (a source tree)."""
    env = dict(os.environ)
    parent = str(PACKAGE.parent)
    if parent not in {str(Path(p).resolve()) for p in site.getsitepackages() + [site.getusersitepackages()]}:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), parent]))
    return env


def run_child(code: str, *args: str, timeout: float = CHILD_TIMEOUT_S) -> tuple[bool, str]:
    """Run `code` in a new Python; (True, its last stdout line) or (False, why it failed, in one line)."""
    try:
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                              timeout=timeout, env=child_env(), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, f"did not finish in {timeout:g} s"
    if done.returncode < 0:
        return False, f"the process crashed ({signal.Signals(-done.returncode).name})"
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return False, lines[-1].strip() if lines else f"exit code {done.returncode}"
    lines = done.stdout.strip().splitlines()
    return True, lines[-1] if lines else ""


# decord alone (what `--decoder decord` decodes frames with; PyAV decodes them by default and always reads
# the sound), so that a broken PyAV is not reported as a broken decord.
DECORD = """
import json, sys
import numpy as np
import decord
reader = decord.VideoReader(sys.argv[1], width=171, height=128, fault_tol=0.05)
starts = reader.get_frame_timestamp(np.arange(len(reader)))[:, 0]
frames = reader.get_batch((np.searchsorted(starts, np.arange(100) / 10 + 1e-6, side="right") - 1).tolist()).asnumpy()
assert frames.shape == (100, 128, 171, 3) and frames.any(), frames.shape
print(json.dumps([decord.__version__, int(frames.mean())]))
"""


def check_decord(clip: Path = CLIP) -> Check:
    """decord decodes a real clip's frames as `--decoder decord` does: resized inside the decoder, picked by
    their times (avaudit.media.decode); the default decoder and the sound are PyAV's, checked by check_pyav."""
    ok, out = run_child(DECORD, str(clip))
    if not ok:
        return Check("decord", False, f"decoding {clip.name}: {out} (only `--decoder decord` needs it)",
                     reinstall("decord"))
    version, mean = json.loads(out)
    return Check("decord", True, f"decord {version}: 100 frames of 128 × 171 (mean level {mean}) from {clip.name}",
                 "")


PYAV = """
import json, sys
import av
with av.open(sys.argv[1]) as container:
    video = next(container.decode(video=0)).to_ndarray(format="rgb24")
with av.open(sys.argv[1]) as container:
    stream = container.streams.audio[0]
    samples = sum(frame.samples for _, frame in zip(range(50), container.decode(audio=0)))
    codecs = [container.streams.video[0].codec_context.name, stream.codec_context.name, stream.rate]
print(json.dumps([av.__version__, list(video.shape), samples, codecs]))
"""


def check_pyav(clip: Path = CLIP) -> Check:
    """PyAV (the default decoder of every clip's picture and sound; it also writes localize.mp4 and the planted
    sets) opens and decodes a real clip."""
    ok, out = run_child(PYAV, str(clip))
    if not ok:
        return Check("PyAV", False, f"decoding {clip.name}: {out}", reinstall("av"))
    version, shape, samples, (vcodec, acodec, rate) = json.loads(out)
    return Check("PyAV", True, f"PyAV {version}: a {shape[1]} × {shape[0]} {vcodec} frame and {samples} "
                               f"samples of {acodec} at {rate} Hz from {clip.name}", "")


ONSETS = """
import json, sys
import numpy as np
from avaudit.media.onsets import onset_steps
audio = np.zeros(160000, np.float32)
for second in (0.55, 2.05, 3.33, 6.71, 9.12):
    start = int(second * 16000)
    audio[start : start + 400] = np.hanning(400) * np.sin(np.arange(400) * 0.9)
steps = onset_steps(audio, sample_rate=16000, steps=100, seconds=10.0).nonzero()[0].tolist()
print(json.dumps([steps, sorted(m for m in ("librosa", "numba") if m in sys.modules)]))
"""
ONSET_STEPS = [5, 20, 33, 67, 91]  # the clicks at 0.55, 2.05, 3.33, 6.71 and 9.12 s, ten steps a second


def check_onsets() -> Check:
    """Onset detection (numpy, no JIT) runs in a fresh process and finds five planted clicks."""
    ok, out = run_child(ONSETS)
    if not ok:
        return Check("onsets", False, f"onset detection: {out}", reinstall("numpy"))
    steps, jit = json.loads(out)
    if steps != ONSET_STEPS:
        return Check("onsets", False, f"five clicks at steps {ONSET_STEPS} gave onsets at steps {steps}",
                     reinstall("numpy"))
    return Check("onsets", True, f"five planted clicks found at steps {steps}"
                                 + (f" ({', '.join(jit)} loaded)" if jit else ", no JIT compiler loaded"), "")


MODEL = """
import json, sys
from avaudit.model.checkpoint import load_network
_, classes, config, _ = load_network(sys.argv[1])
print(json.dumps([config.preset, len(classes)]))
"""


def check_model(model: Path | None = None) -> Check:
    """The checkpoint loads as an audit loads it (the shipped one unless --model names another): its
    fields and config checked, its weights finite and fitting the network its config builds."""
    shipped = model is None
    model = PACKAGE / "weights" / "default.pt" if model is None else Path(model)
    bad_file = REINSTALL_AVAUDIT + ": the shipped model is package data" if shipped else \
        "give --model a checkpoint written by avaudit train"
    if not model.is_file():
        return Check("model", False, f"{model}: no such file", bad_file)
    ok, out = run_child(MODEL, str(model))
    refused = "avaudit.model.checkpoint.CheckpointError: "
    if not ok and out.startswith(refused):  # the message names the file and why
        return Check("model", False, out.removeprefix(refused), bad_file)
    if not ok:
        return Check("model", False, f"{model}: {out}", reinstall("torch"))
    preset, classes = json.loads(out)
    return Check("model", True, f"{model}: preset {preset}, {classes} classes", "")


GPU = """
import json, os
import torch
info = {"torch": torch.__version__, "cuda": torch.version.cuda, "threads": torch.get_num_threads()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(count=torch.cuda.device_count(), name=p.name, memory=p.total_memory,
                bf16=torch.cuda.is_bf16_supported(), cudnn=torch.backends.cudnn.is_available())
    x = torch.ones(64, 64, device="cuda", dtype=torch.bfloat16)
    info["matmul"] = float((x @ x).float().mean())
print(json.dumps(info))
"""


def check_gpu() -> Check:
    """The GPU when there is one: its name, memory, bf16 (audits use bf16 autocast) and cuDNN."""
    ok, out = run_child(GPU)
    if not ok:
        return Check("GPU", False, f"torch: {out}", reinstall("torch"))
    info = json.loads(out)
    if "name" not in info:
        build = f"CUDA {info['cuda']} build" if info["cuda"] else "CPU build"
        return Check("GPU", True, f"no CUDA GPU (torch {info['torch']}, {build}): audits run on the CPU with "
                                  f"{info['threads']} threads", "")
    detail = (f"{info['name']} ({info['count']} device{'s' if info['count'] > 1 else ''}), "
              f"{info['memory'] / 2**30:.0f} GiB, bf16 {'yes' if info['bf16'] else 'no'}, "
              f"cuDNN {'yes' if info['cudnn'] else 'no'}, torch {info['torch']} (CUDA {info['cuda']})")
    if not info["bf16"] or not info["cudnn"] or info["matmul"] != 64.0:
        return Check("GPU", False, detail + ("" if info["matmul"] == 64.0 else ", a bf16 matmul gave a wrong sum"),
                     "use --device cpu, or a GPU with bf16 and cuDNN (Ampere or newer) and torch's CUDA build")
    return Check("GPU", True, detail, "")


# --- in this process -------------------------------------------------------------------------------------


def check_cache_dir(cache_dir: Path | None = None) -> Check:
    """The logit cache folder (--cache-dir, else $AVAUDIT_CACHE_DIR, else ~/.cache/avaudit) takes a file."""
    if cache_dir is None:
        from avaudit.inference.cache import default_cache_dir

        cache_dir = default_cache_dir()
    cache_dir = Path(cache_dir).expanduser()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache_dir, prefix=".doctor-", delete=False) as handle:
            handle.write(b"avaudit doctor")
        moved = Path(handle.name).with_suffix(".renamed")
        os.replace(handle.name, moved)  # as the cache's files are replaced: whole, by a rename
        moved.unlink()
    except OSError as err:
        return Check("cache directory", False, f"{cache_dir}: {err.strerror or err}",
                     f"make {cache_dir} writable, or give a writable folder with --cache-dir or AVAUDIT_CACHE_DIR")
    free = shutil.disk_usage(cache_dir).free / 2**30
    return Check("cache directory", True, f"{cache_dir}: writable, {free:.1f} GiB free", "")


def guarded(check, *args) -> Check:
    """A check that raises is a failed check named after its function."""
    try:
        return check(*args)
    except Exception as err:  # noqa: BLE001 - the doctor reports every failure, it never dies of one
        name = check.__name__.removeprefix("check_").replace("_", " ")
        return Check(name, False, f"{type(err).__name__}: {err}", REINSTALL_AVAUDIT)


def run_checks(*, cache_dir: Path | None = None, model: Path | None = None) -> list[Check]:
    """Every check, in a fixed order; the ones in child processes run at the same time."""
    calls = [(check_libraries,), (check_decord,), (check_pyav,), (check_onsets,), (check_model, model),
             (check_cache_dir, cache_dir), (check_gpu,)]
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: guarded(*call), calls))
