"""Pictures with matplotlib (Agg, no display), one colour per layer in every one of them."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from avaudit.vocab import ASSIGNMENTS, LAYERS, UNCLEAR_TYPE

LAYER_COLORS = dict(zip(ASSIGNMENTS, ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#d62728", "#7f7f7f")))
LAYER_COLORS[UNCLEAR_TYPE] = "#8c564b"  # audio-visual, event type unclear


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plain(text) -> str:
    """A file or class name to draw as it is (with parse_math=False, so that `price_$5_$` is neither
    maths nor a mathtext crash): control characters written as escapes (`\\x1b`), since drawing one
    makes matplotlib warn with the character itself, and that warning reaches the terminal."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in str(text))


def png_bytes(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


def overlay(frames: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 with heat (T, h, w) upsampled over them in a jet colour map."""
    import torch
    import torch.nn.functional as F

    plt = _pyplot()
    t, h, w = frames.shape[:3]
    up = F.interpolate(torch.as_tensor(heat, dtype=torch.float32)[:, None], size=(h, w), mode="bilinear",
                       align_corners=False)[:, 0].numpy()
    low, high = up.min(), up.max()
    norm = (up - low) / (high - low) if high > low else np.zeros_like(up)
    colours = plt.get_cmap("jet")(norm)[..., :3] * 255
    return (0.55 * frames + 0.45 * colours).clip(0, 255).astype(np.uint8)


def heat_grid(frames: np.ndarray, heat: np.ndarray, *, steps_per_second: int, title: str) -> bytes:
    """One overlaid frame per second, in a row: section 4.4's localization at a glance."""
    plt = _pyplot()
    picked = np.arange(0, len(frames), steps_per_second)
    shown = overlay(frames[picked], heat[picked])
    figure, axes = plt.subplots(1, len(picked), figsize=(1.6 * len(picked), 2.0))
    for second, (axis, image) in enumerate(zip(np.atleast_1d(axes), shown)):
        axis.imshow(image)
        axis.set_title(f"{second} s", fontsize=8)
        axis.axis("off")
    figure.suptitle(plain(title), fontsize=9, parse_math=False)
    return png_bytes(figure)


def timeline(confidence: np.ndarray, layers, *, label: str) -> bytes:
    """Per-second confidence (S, 5) of each layer in `label` (supplement Fig. 11)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 2.6))
    seconds = np.arange(len(confidence)) + 0.5
    for i, name in enumerate(layers):
        axis.plot(seconds, confidence[:, i], marker="o", color=LAYER_COLORS[name], label=name)
    axis.set_xlabel("second")
    axis.set_ylabel(plain(f"confidence in {label}"), parse_math=False)
    axis.set_ylim(0, 1.02)
    axis.legend(fontsize=7, ncol=5, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return png_bytes(figure)


def layer_bars(counts: dict[str, int], *, title: str) -> bytes:
    """Table 3 as a bar chart: categories per layer, each bar's count above it. Seven names fit under
    their bars at this width and size (`audiovisual` is the longest)."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7.5, 2.8))
    names = list(counts)
    bars = axis.bar(names, [counts[n] for n in names], width=0.7,
                    color=[LAYER_COLORS.get(n, "#333333") for n in names])
    axis.bar_label(bars, fontsize=8, padding=2)
    axis.tick_params(axis="x", labelsize=8)
    axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axis.margins(y=0.15)  # room for the counts above the tallest bar
    axis.set_ylabel("categories")
    axis.set_title(plain(title), fontsize=9, parse_math=False)
    return png_bytes(figure)


def frame_strip(frames: np.ndarray) -> bytes:
    """A few frames side by side, as a thumbnail strip."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(frames), figsize=(0.9 * len(frames), 0.9))
    for axis, image in zip(np.atleast_1d(axes), frames):
        axis.imshow(image)
        axis.axis("off")
    return png_bytes(figure)


VOTE_COLOR = "#000000"


def train_curves(history) -> bytes:
    """train_history.csv drawn: each layer's and the vote's validation accuracy per epoch (top), the
    training loss and the learning rate (bottom), the stages side by side. A layer's line starts in
    the stage whose inputs can measure it (the audio stage decodes no frames, the video stage no sound)."""
    plt = _pyplot()
    x = np.arange(1, len(history) + 1)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 5.2), sharex=True,
                                         gridspec_kw={"height_ratios": [3, 2]})
    for name in (*LAYERS, "vote"):
        values = history[f"val_{name}"].to_numpy(dtype=float)
        if np.isfinite(values).any():
            top.plot(x, values, marker="o", markersize=3, color=LAYER_COLORS.get(name, VOTE_COLOR), label=name,
                     linewidth=2.2 if name == "vote" else 1.4)
    top.set_ylabel("validation accuracy")
    top.set_ylim(-0.02, 1.02)
    if top.get_lines():  # none without a validation clip
        top.legend(fontsize=7, ncol=6, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    bottom.plot(x, history["loss"].to_numpy(dtype=float), marker="o", markersize=3, color="#333333")
    bottom.set_ylabel("training loss")
    bottom.set_xlabel("epoch (all stages)")
    rate = bottom.twinx()
    rate.step(x, history["lr"].to_numpy(dtype=float), where="mid", color="#999999", linestyle=":")
    rate.set_yscale("log")
    rate.set_ylabel("lr", color="#777777")
    stages = history["stage"].to_numpy()
    for i, name in enumerate(stages):
        if i == 0 or stages[i - 1] != name:
            for axis in (top, bottom):
                if i:
                    axis.axvline(i + 0.5, color="#bbbbbb", linestyle="--", linewidth=0.8)
            top.text(i + 0.6, 0.02, f"{name} stage", fontsize=7, color="#555555")
    return png_bytes(figure)


def write_png(data: bytes, path: Path) -> None:
    from avaudit.outputs import atomic_write_bytes

    atomic_write_bytes(path, data)
