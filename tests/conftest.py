"""Fixtures: real mp4 clips written with the product's writer, a tiny model, caches."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from avaudit.config import load_config
from avaudit.media import encode

TINY_MODEL = {
    "model.resize": [32, 32], "model.crop": 32, "model.audio_widths": [4, 4, 8, 8, 8, 8, 16],
    "model.embed_dim": 16, "model.video_stem_width": 4, "model.video_widths": [4, 8, 8, 16],
    "model.video_blocks": [1, 1, 1, 1],
}


def write_clip(path: Path, *, seconds: float = 10.0, fps: int = 25, size=(48, 64), audio: bool = True) -> Path:
    """An mp4 written by the product's own writer (avaudit/media/encode.py): frame i is grey level i (mod 256),
    so its red is i to within 1 after H.264 (exact enough to check sampling), with a 440 Hz tone of amplitude
    0.5; with `audio=False` the sound stream is left out of the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    levels = (np.arange(int(round(seconds * fps))) % 256).astype(np.uint8)
    frames = np.repeat(levels[:, None, None, None], 3, axis=3) * np.ones((1, *size, 1), np.uint8)
    rate = 16000
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
    if audio:
        encode.write_clip(path, frames=frames, audio=tone, fps=fps, sample_rate=rate)
        return path
    sounded = path.with_name(f"{path.stem}.sound{path.suffix}")  # encode.py always writes sound
    encode.write_clip(sounded, frames=frames, audio=tone, fps=fps, sample_rate=rate)
    with av.open(str(sounded)) as source, av.open(str(path), "w") as out:  # the video packets, copied
        video = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = video
                out.mux(packet)
    sounded.unlink()
    return path


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory):
    """Tests never touch the user's logit cache; they share one cache a session, so the planted set is
    decoded once."""
    import os

    os.environ["AVAUDIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A cache of the test's own, empty at its start, for a test that counts what is read from the cache or
    decoded (the session's cache holds what earlier tests decoded)."""
    monkeypatch.setenv("AVAUDIT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def tiny_config():
    return load_config("small", TINY_MODEL)


@pytest.fixture(scope="session")
def clip10(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("media") / "ten.mp4")


@pytest.fixture(scope="session")
def planted(tmp_path_factory) -> Path:
    """A tiny planted set: 16 categories x 2 clips + 4 two-event clips, 32 x 32 frames."""
    from avaudit.planted import make_samples

    out = tmp_path_factory.mktemp("planted") / "set"
    make_samples(out, seed=5, clips_per_category=2, two_event_per_category=1, size=32)
    return out


@pytest.fixture(scope="session")
def tiny_preset(tmp_path_factory) -> Path:
    """TINY_MODEL as a preset YAML file, one epoch per stage, no decoding workers."""
    import yaml

    data = {"model": {}, "train": {"epochs": [1, 1, 1], "num_workers": 0, "batch_size": 4}}
    for key, value in TINY_MODEL.items():
        section, _, name = key.partition(".")
        data[section][name] = value
    path = tmp_path_factory.mktemp("preset") / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="session")
def tiny_model(planted, tiny_preset, tmp_path_factory) -> Path:
    """A tiny model trained one epoch per stage on the planted set."""
    from avaudit.config import load_config
    from avaudit.media.manifests import read_manifest
    from avaudit.training.recipe import run_recipe

    out = tmp_path_factory.mktemp("model") / "tiny.pt"
    run_recipe(read_manifest(planted).table, config=load_config(tiny_preset), out=out, device="cpu")
    return out


@pytest.fixture(scope="session")
def renamed_model(tiny_model, tmp_path_factory):
    """`renamed_model(names)`: the tiny model with its first len(names) classes renamed to `names` (sorted
    after, with `sort=True`), for data whose labels the planted set lacks; each list saved once a session."""
    import torch

    saved: dict[tuple, Path] = {}

    def rename(names: list[str], *, sort: bool = False) -> Path:
        key = (tuple(names), sort)
        if key not in saved:
            data = torch.load(tiny_model, weights_only=True)
            assert len(data["classes"]) >= len(names)
            classes = [*names, *data["classes"][len(names):]]
            data["classes"] = sorted(classes) if sort else classes
            saved[key] = tmp_path_factory.mktemp("renamed") / "model.pt"
            torch.save(data, saved[key])
        return saved[key]

    return rename
