"""Presets as data: YAML files loaded into dataclasses, saved beside every output and checkpoint."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from avaudit.errors import UsageError

PRESET_DIR = Path(__file__).parent / "presets"


@dataclass
class ModelConfig:
    seconds: float = 10.0  # window the network sees, in seconds
    steps: int = 100  # T: time steps over the window (10 per second in the paper)
    sample_rate: int = 16000  # audio rate, Hz, mono
    n_fft: int = 512  # STFT size of the log-mel
    hop_length: int = 160  # samples between log-mel frames (10 ms)
    win_length: int = 320  # hann window length in samples (20 ms)
    n_mels: int = 80  # mel bins
    resize: tuple[int, int] = (128, 171)  # (H, W) the decoder resizes frames to
    crop: int = 112  # centre crop side in pixels, after resize
    mean: tuple[float, float, float] = (0.43216, 0.394666, 0.37645)  # Kinetics RGB mean
    std: tuple[float, float, float] = (0.22803, 0.22145, 0.216989)  # Kinetics RGB std
    audio_widths: tuple[int, ...] = (64, 64, 192, 256, 256, 256, 512)  # conv1..conv7 filters, Table 6(a)
    embed_dim: int = 512  # D: fc8/fc9 width; must equal the video backbone's last width
    video_stem_width: int = 64  # MC3 stem filters
    video_widths: tuple[int, ...] = (64, 128, 256, 512)  # MC3 layer1..layer4 filters
    video_blocks: tuple[int, ...] = (2, 2, 2, 2)  # BasicBlocks per MC3 layer (2,2,2,2 = MC3-18)
    instant_k: int = 10  # K of eq. 2

    @property
    def fps(self) -> float:
        """Frames per second fed to the network: one frame per time step."""
        return self.steps / self.seconds

    @property
    def n_samples(self) -> int:
        return int(round(self.seconds * self.sample_rate))

    @property
    def clip_bytes(self) -> int:
        """Bytes one decoded clip takes in memory: frames, waveform and onset steps (4.2 MiB for `paper`)."""
        return self.steps * self.crop * self.crop * 3 + self.n_samples * 4 + self.steps


@dataclass
class TrainConfig:
    batch_size: int = 8  # clips per SGD step
    lr: float = 0.01  # starting learning rate (section 4.2)
    momentum: float = 0.9  # SGD momentum (not stated in the paper)
    weight_decay: float = 1e-4  # SGD weight decay (not stated in the paper)
    epochs: tuple[int, int, int] = (10, 10, 10)  # epochs of the audio, video and joint stages
    patience: int = 3  # epochs without a rise in validation accuracy before lr /= 10
    lr_factor: float = 0.1  # the "divided by 10"
    val_fraction: float = 0.2  # held-out share per category when DATA has no split column
    seed: int = 0  # seeds initialisation, split and batch order
    num_workers: int | None = None  # decoding worker processes per rank (None: this machine's cores / its ranks)
    memory_budget: float = 2.0  # GiB of decoded clips kept after the first epoch; past it, every epoch streams
    checkpoint_minutes: float = 5.0  # also checkpoint inside an epoch this often (0: only at its end)
    checkpoint_steps: int = 0  # also checkpoint every this many batches (0: never; deterministic, for tests)


@dataclass
class Config:
    preset: str = "paper"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _section(cls, values: dict):
    """One section of a config (ModelConfig or TrainConfig) from its mapping, refusing unknown fields."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(names)
    if unknown:
        raise UsageError(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def config_from_dict(data: dict) -> Config:
    """Inverse of Config.to_dict (used for checkpoints and saved configs)."""
    return Config(
        preset=data.get("preset", "custom"),
        model=_section(ModelConfig, data.get("model", {})),
        train=_section(TrainConfig, data.get("train", {})),
    )


def load_config(preset: str | Path = "small", overrides: dict | None = None) -> Config:
    """Load a named preset (`paper`, `small`) or a YAML file, then apply dotted overrides.

    overrides: {"train.epochs": [1, 1, 1], "model.crop": 32, ...}.
    """
    path = PRESET_DIR / f"{preset}.yaml"
    if not path.exists():
        path = Path(preset)
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
            raise UsageError(f"no preset or YAML file named {preset!r} (presets: {known})")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a preset must be a mapping with 'model' and 'train' sections")
    data.setdefault("preset", path.stem)
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        data.setdefault(section, {})[name] = value
    config = config_from_dict(data)
    if config.model.embed_dim != config.model.video_widths[-1]:
        raise UsageError("model.embed_dim must equal the last video width (z^V and z^A are dotted in eq. 2)")
    return config
