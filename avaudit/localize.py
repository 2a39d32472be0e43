"""Sound localization (section 4.4) and modality timelines (supplement Fig. 11) for one video."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from avaudit.errors import UsageError
from avaudit.vocab import LAYERS, Decoder


def heat_peaks(alpha: np.ndarray) -> tuple[float, np.ndarray]:
    """alpha (T, h, w) -> (step of the strongest response, (T, 2) peak (row, col) of every step)."""
    flat = alpha.reshape(len(alpha), -1)
    rows, cols = np.unravel_index(flat.argmax(axis=1), alpha.shape[1:])
    return int(flat.max(axis=1).argmax()), np.stack([rows, cols], axis=1)


def to_source_fraction(peaks: np.ndarray, *, map_size: tuple[int, int], resize: tuple[int, int],
                       crop: int) -> np.ndarray:
    """Map cells of the (h, w) response to (x, y) fractions of the decoded frame's width and height."""
    h, w = map_size
    y = ((peaks[:, 0] + 0.5) * crop / h + (resize[0] - crop) / 2) / resize[0]
    x = ((peaks[:, 1] + 0.5) * crop / w + (resize[1] - crop) / 2) / resize[1]
    return np.stack([x, y], axis=1)


@torch.no_grad()
def per_second_confidence(model, z_v, z_a, onsets, label: int, *, steps_per_second: int) -> np.ndarray:
    """(S, 5): each layer's confidence in `label`, the layers run on each second on its own."""
    rows = []
    for start in range(0, z_v.shape[1], steps_per_second):
        window = slice(start, start + steps_per_second)
        logits = model.heads_forward(z_v[:, window], z_a[:, window], onsets[:, window])
        rows.append(torch.softmax(logits.float(), dim=-1)[0, :, label].numpy())
    return np.stack(rows)


LOCALIZE_FILES = ("localize.png", "localize.mp4", "timeline.png", "localize.json")  # localize.json last


def rounded(values, digits: int = 4) -> list:
    """Numbers for localize.json: float32 values widened before rounding, so 0.0173 is written as
    0.0173 and not as the float32 nearest it (0.01730000041425228)."""
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


@torch.no_grad()
def localize(video: Path, *, model: Path, out: Path, timeline: bool = False, decoder: str = "pyav") -> dict:
    """Write localize.png, localize.mp4 (heat over the frames, with the clip's sound), localize.json
    and, with `timeline`, timeline.png, as one output set (outputs.output_set: a timeline.png of an
    earlier run without it is removed); `decoder` decodes the frames (pyav or decord, as the audits'
    --decoder). Returns the JSON's content and the model's `classes`."""
    from avaudit.audits.decisions import softmax, vote
    from avaudit.media.dataset import ClipDataset
    from avaudit.media.encode import write_clip
    from avaudit.model.checkpoint import load_network
    from avaudit.model.fusion import localization_map
    from avaudit.options import choice
    from avaudit.outputs import check_writes, output_set, write_json
    from avaudit.plots import heat_grid, overlay, write_png
    from avaudit.plots import timeline as timeline_plot

    out, decoder = Path(out), choice("decoder", decoder, Decoder)
    check_writes([out / name for name in LOCALIZE_FILES], data=Path(video), model=Path(model))
    net, classes, config, _ = load_network(model)
    m = config.model
    item = ClipDataset([str(video)], config=m, decoder=decoder)[0]
    if item.reason:  # the dataset already named the file and what went wrong
        raise UsageError(f"{item.detail} ({item.reason})")
    z_v, z_a, v_maps = net.features(item.frames[None], item.audio[None])
    onsets = item.onsets[None]
    logits = net.heads_forward(z_v, z_a, onsets).numpy()
    label = int(vote(softmax(logits))[0])
    alpha = localization_map(v_maps, z_a)[0].numpy()  # (T, h, w)
    peak_step, peaks = heat_peaks(alpha)
    where = to_source_fraction(peaks, map_size=alpha.shape[1:], resize=m.resize, crop=m.crop)
    steps_per_second = int(round(m.fps))
    frames = item.frames.numpy()
    scale = max(1, 160 // m.crop)  # small frames are enlarged for people to see
    big = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    result = {"video": str(video), "predicted": classes[label], "peak_time": round(peak_step / m.fps, 4),
              "peak_xy_fraction": rounded(where[peak_step]), "per_step_peak_xy_fraction": rounded(where),
              # one response cell, as a fraction of the frame's width and height
              "cell_fraction": rounded([m.crop / alpha.shape[2] / m.resize[1], m.crop / alpha.shape[1] / m.resize[0]]),
              "response_per_step": rounded(alpha.reshape(len(alpha), -1).max(axis=1))}
    title = f"{Path(video).name}: alpha_t = V_t . z^A_t, predicted {classes[label]}"
    with output_set(out, record="localize.json", remove=[] if timeline else ["timeline.png"]) as staged:
        write_png(heat_grid(big, alpha, steps_per_second=steps_per_second, title=title), staged / "localize.png")
        write_clip(staged / "localize.mp4", frames=overlay(big, alpha), audio=item.audio.numpy(),
                   fps=steps_per_second, sample_rate=m.sample_rate)
        if timeline:
            confidence = per_second_confidence(net, z_v, z_a, onsets, label, steps_per_second=steps_per_second)
            write_png(timeline_plot(confidence, LAYERS, label=classes[label]), staged / "timeline.png")
            result["per_second_confidence"] = {name: rounded(confidence[:, i]) for i, name in enumerate(LAYERS)}
        write_json(result, staged / "localize.json")
    return {**result, "classes": list(classes)}
