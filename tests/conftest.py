"""Fixtures: real mp4 clips written with PyAV, and a tiny model config."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from avaudit.config import load_config

TINY_MODEL = {
    "model.resize": [32, 32], "model.crop": 32, "model.audio_widths": [4, 4, 8, 8, 8, 8, 16],
    "model.embed_dim": 16, "model.video_stem_width": 4, "model.video_widths": [4, 8, 8, 16],
    "model.video_blocks": [1, 1, 1, 1],
}


def write_clip(path: Path, *, seconds: float = 10.0, fps: int = 25, size=(48, 64), audio: bool = True,
               tone_hz: float = 440.0, sample_rate: int = 16000, codec: str = "libx264") -> Path:
    """An mp4 whose frame i has red = i (mod 256) and a sine tone track; exact enough to check sampling."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=fps)
        video.height, video.width = size
        video.pix_fmt = "yuv444p" if codec == "libx264" else "yuv420p"
        video.options = {"qp": "0"} if codec == "libx264" else {}
        if audio:
            sound = out.add_stream("aac", rate=sample_rate)
            sound.layout = "mono"
        for i in range(int(round(seconds * fps))):
            img = np.zeros((*size, 3), np.uint8)
            img[..., 0] = i % 256
            for packet in video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio:
            t = np.arange(int(seconds * sample_rate)) / sample_rate
            y = (0.5 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
            for k in range(0, len(y), 1024):
                frame = av.AudioFrame.from_ndarray(y[None, k : k + 1024], format="flt", layout="mono")
                frame.sample_rate, frame.pts = sample_rate, k
                for packet in sound.encode(frame):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
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
    from avaudit.training import train

    out = tmp_path_factory.mktemp("model") / "tiny.pt"
    train(read_manifest(planted).table, config=load_config(tiny_preset), out=out, device="cpu")
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
