"""Which clips train and which validate, each clip's training label, and every epoch's order dealt
to the torchrun ranks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from avaudit.labels import label_names

VAL_SPLITS = ("val", "valid", "validate", "validation")


def split_train_val(table: pd.DataFrame, *, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the training and validation clips.

    The manifest's split column decides when it names both a training and a validation split;
    otherwise a seeded `fraction` of every category is held out (at least one clip of any
    category with two or more).
    """
    split = table["split"].str.lower().to_numpy() if "split" in table else np.full(len(table), "")
    if (split == "train").any() and np.isin(split, VAL_SPLITS).any():
        return np.flatnonzero(split == "train"), np.flatnonzero(np.isin(split, VAL_SPLITS))
    rng = np.random.default_rng(seed)
    val = []
    for _, rows in sorted(table.groupby("label").indices.items()):
        if len(rows) >= 2:
            val.extend(rng.permutation(rows)[: max(1, int(round(fraction * len(rows))))])
    val = np.sort(np.asarray(val, int))
    return np.setdiff1d(np.arange(len(table)), val), val


def training_labels(labels: pd.Series, *, seed: int) -> pd.Series:
    """One label per clip: multi-label rows (LLP, AVE) get one of theirs at random, as in section 4.2,
    except that a label no clip drew is given to the first clip carrying it whose draw another clip
    shares, so that every class has a clip to learn it from where DATA allows."""
    rng = np.random.default_rng(seed)
    labels = labels.astype("str")  # a manifest's are categorical, whose map draws once a category, not a row
    chosen = labels.map(lambda text: (lambda parts: parts[rng.integers(len(parts))])(text.split(";")))
    counts = chosen.value_counts().to_dict()
    for label in training_classes(labels):
        if counts.get(label):
            continue
        for i in np.flatnonzero(labels.str.split(";").map(lambda parts, want=label: want in parts).to_numpy()):
            if counts[chosen.iat[i]] > 1:
                counts[chosen.iat[i]] -= 1
                chosen.iat[i], counts[label] = label, 1
                break
    return chosen


def training_classes(labels: pd.Series) -> list[str]:
    """The classes a model trained on these rows has: every label that appears, multi-label rows included."""
    return sorted(label_names(labels))


def epoch_order(n: int, *, seed: int, epoch: int) -> np.ndarray:
    """The epoch's permutation of range(n): DistributedSampler's (torch.randperm seeded seed + epoch)."""
    generator = torch.Generator()
    generator.manual_seed(seed + epoch)
    return torch.randperm(n, generator=generator).numpy()


def rank_batches(order: np.ndarray, *, rank: int, world: int, per_rank: int) -> list[np.ndarray]:
    """This rank's batches of `order`: positions rank, rank + world, ... (DistributedSampler's
    dealing, without its padding, so the ranks' shares are disjoint). Every rank gets the same
    number of batches, so the ranks step together; a rank's last one may be shorter, or empty."""
    n_batches = -(-(-(-len(order) // world)) // per_rank)
    share = order[rank::world]
    return [share[b * per_rank : (b + 1) * per_rank] for b in range(n_batches)]
