"""The categories' groups (audio, visual, audiovisual, redundant, unclear) that `missing-labels` judges its
candidates with: this run's own `bias` call (`category_groups`), or `--groups FILE`, from people or another run,
where this run's own model cannot settle them.

A weak model's unimodal layers perceive too little for `bias` to call groups, and without groups a class-wide
candidate is no candidate (`audits.missing_labels.unowned_class_wide`): its outputs alone cannot tell a sound left
off a whole class from a sound it learned with that class. People's modality labels can. The file is read by its
header:

- any CSV with `category` and `group` columns: a `bias_categories.csv` of another run (say a stronger model's),
  a planted set's `truth.csv`, or one written by hand;
- VGGSounder's CSV (or `vggsounder`, the installed package's): each label's group is the modality most of
  its rows have (`A` audio, `V` visual, `AV` audiovisual); a tie is `unclear`.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from avaudit.options import THRESHOLDS
from avaudit.truthfiles import PACKAGE_NAME, VGGSOUNDER_HEADER, TruthError, read_vggsounder, vggsounder_file
from avaudit.vocab import GROUPS, UNCLEAR

GROUP_NAMES = (*GROUPS, UNCLEAR)


def read_groups(spec: str | Path) -> dict[str, str]:
    """{category name as the file spells it: group}; a one-line TruthError naming the file where it cannot."""
    path = vggsounder_file("--groups") if str(spec) == PACKAGE_NAME else Path(spec)
    if not path.is_file():
        raise TruthError(f"{path}: no such groups file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, strict=True)
            header = [name.strip() for name in next(reader, [])]
            if tuple(header) == VGGSOUNDER_HEADER:
                return majority_groups(read_vggsounder(path))
            if "category" not in header or "group" not in header:
                raise TruthError(f"{path}: line 1 has no category and group columns (a bias_categories.csv, a "
                                 "planted truth.csv or VGGSounder's CSV)")
            return _named_groups(path, reader, header.index("category"), header.index("group"))
    except UnicodeDecodeError:
        raise TruthError(f"{path}: not UTF-8 text") from None
    except csv.Error:
        raise TruthError(f"{path}: line {reader.line_num} is not CSV") from None


def _named_groups(path: Path, reader, at_category: int, at_group: int) -> dict[str, str]:
    """The rows of a category,group file, each checked: a known group, one group per category."""
    groups, lines = {}, {}
    for row in reader:
        if not any(value.strip() for value in row):
            continue
        if len(row) <= max(at_category, at_group):
            raise TruthError(f"{path}: line {reader.line_num} has {len(row)} fields")
        category, group = row[at_category].strip(), row[at_group].strip()
        if not category:
            raise TruthError(f"{path}: line {reader.line_num} has an empty category")
        if group not in GROUP_NAMES:
            raise TruthError(f"{path}: line {reader.line_num} has a group other than {', '.join(GROUP_NAMES)}")
        if groups.setdefault(category, group) != group:
            raise TruthError(f"{path}: line {reader.line_num} gives {category!r} another group than line "
                             f"{lines[category]}")
        lines.setdefault(category, reader.line_num)
    if not groups:
        raise TruthError(f"{path}: no categories")
    return groups


def majority_groups(people: pd.DataFrame) -> dict[str, str]:
    """Each label's group from people's (video, label) modalities (`truth` column): the most frequent one,
    `unclear` on a tie."""
    counts = people.groupby(["label", "truth"]).size().unstack(fill_value=0)
    top = counts.max(axis=1)
    ties = counts.eq(top, axis=0).sum(axis=1) > 1
    return {label: UNCLEAR if tie else group for label, group, tie in zip(counts.index, counts.idxmax(axis=1), ties)}


def class_groups(named: dict[str, str], classes: list[str]) -> tuple[dict[str, str], list[str]]:
    """(the groups of the model's classes that `named` names, matched ignoring case, '_' against ' ' and repeated
    spaces as people's labels are; the names that match no class)."""
    from avaudit.audits.truth import normal_label

    keys = normal_label(pd.Series(list(named), dtype=object)).tolist()
    own = dict(zip(normal_label(pd.Series(classes, dtype=object)), classes))
    matched = {own[key]: named[name] for name, key in zip(named, keys) if key in own}
    return matched, [name for name, key in zip(named, keys) if key not in own]


def unjudged_class_wide(confusions: pd.DataFrame, groups: dict[str, str]) -> list[str]:
    """A note where candidates named on most videos of their label were set apart while the candidate's group is
    unclear in this run: its evidence cannot tell a label missing from the whole class from a confusion."""
    from avaudit.audits.missing_labels import WHOLE_CLASS

    wide = confusions[(confusions["median_confusion"] >= WHOLE_CLASS)
                      & (confusions["candidate"].map(groups).fillna(UNCLEAR) == UNCLEAR).to_numpy()]
    if wide.empty:
        return []
    return [f"{len(wide)} (label, candidate) pair(s) named on most videos of the label were set apart: the "
            f"candidate's group is unclear in this run (e.g. {wide['candidate'].iloc[0]!r} on "
            f"{wide['label'].iloc[0]!r}), so a label missing from a whole class cannot be told from a confusion; "
            "--groups FILE (people's modality labels, or a stronger model's bias_categories.csv) lets them be judged"]


def category_groups(rows: pd.DataFrame, read, classes: list[str], *, size: int) -> dict[str, str]:
    """Each category's group as `bias` calls it by default, from the rows with one known label: missing-labels
    judges its candidates with them (docs/decisions-bench.md, Rule 2). `read(row numbers)` gives (scores,
    confidences (n, 5, C) float64) of `rows`, read `size` rows at a time (audits.reduce.bias_inputs): never
    every row's confidences at once. The categories alone are decided (`bias.category_calls`: no per-video table),
    on the true-label confidences held in float32 where the confidences are float32's (`bias_inputs`' `narrow`)."""
    from avaudit.audits.bias import category_calls
    from avaudit.audits.reduce import bias_inputs
    from avaudit.media.listing import give_back_freed

    labels = rows["labels"]  # a categorical's labels stripped once a category, not once a row
    categorical = isinstance(labels.dtype, pd.CategoricalDtype)
    codes, texts = (labels.cat.codes.to_numpy(), labels.cat.categories) if categorical else \
        pd.factorize(labels.astype(str))
    index = {name: i for i, name in enumerate(classes)}
    known = pd.Series(texts, dtype=object).astype(str).str.strip().map(index).fillna(-1).to_numpy(np.int64)
    label = np.where(codes >= 0, known[codes], -1)
    single = np.flatnonzero(label >= 0)
    if not len(single):
        return {}
    label = label[single]
    wide = read(single[:0])[1].dtype  # the type the rules take the confidences in
    true_conf, evidence, _ = bias_inputs(read, single, label, rule=str(THRESHOLDS.rule), size=size, narrow=True)
    single = None  # 8 bytes a row not held while the categories are called
    give_back_freed()  # the blocks' arrays, left with glibc among the per-row ones
    categories = category_calls(label, true_conf, evidence, classes, rule=THRESHOLDS.rule,
                                fraction=THRESHOLDS.fraction, type_margin=THRESHOLDS.type_margin,
                                min_support=THRESHOLDS.min_support, false_call_rate=THRESHOLDS.false_call_rate,
                                wide=wide)
    true_conf = evidence = None
    give_back_freed()
    return dict(zip(categories["category"], categories["group"]))
