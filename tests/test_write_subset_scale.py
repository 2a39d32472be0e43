"""write_subset checks the rows it is asked for against the manifest's table in time linear in the table: a hashed
and sorted copy of every row's number (np.setdiff1d) was 0.5 CPU-s at a million rows and 9 at ten million, most
of `retarget`'s time there (benchmarks/README.md, "Seventh round: the cache fill and retarget")."""
import numpy as np
import pytest

from avaudit.media import manifests
from avaudit.media.manifests import read_manifest, write_subset

N = 20_000


class _SpyNumpy:
    """numpy, with the sizes of the arrays its set routines (unique, setdiff1d) were given recorded."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __getattr__(self, name):
        return getattr(np, name)

    def unique(self, values, *args, **kwargs):
        self.sizes.append(np.size(values))
        return np.unique(values, *args, **kwargs)

    def setdiff1d(self, first, second, *args, **kwargs):
        self.sizes += [np.size(first), np.size(second)]
        return np.setdiff1d(first, second, *args, **kwargs)


@pytest.fixture
def kinetics(tmp_path, monkeypatch):
    """An N-row Kinetics CSV read with every file found (a stand-in Finder, as benchmarks/ten_million.py's)."""
    lines = ["label,youtube_id,time_start,time_end,split"] + [
        f"class {i % 7},y{i:010d},{i % 290},{i % 290 + 10},train" for i in range(N)]
    data = tmp_path / "kinetics.csv"
    data.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(manifests.Finder, "find", lambda self, places, exts: (
        f"{places[0][0]}/{places[0][1]}{exts[0]}", ""))
    return read_manifest(data, root=tmp_path), lines


@pytest.mark.parametrize("asked", [[], [5, 7, N - 1]])
def test_write_subset_checks_its_rows_without_a_set_routine_over_the_table(kinetics, tmp_path, monkeypatch, asked):
    manifest, lines = kinetics
    assert len(manifest.table) == N
    spy = _SpyNumpy()
    monkeypatch.setattr(manifests, "np", spy)
    write_subset(manifest, asked, tmp_path / "subset.csv")
    assert (tmp_path / "subset.csv").read_text() == "".join(f"{lines[i]}\n" for i in [0, *(r + 1 for r in asked)])
    assert max(spy.sizes, default=0) <= len(asked)  # only the rows asked for, never the table's N


def test_write_subset_still_names_rows_not_in_the_table(kinetics, tmp_path):
    manifest, _ = kinetics
    with pytest.raises(ValueError, match=rf"rows not in the manifest's table: \[{N}, {N + 5}\]"):
        write_subset(manifest, [3, N + 5, N], tmp_path / "subset.csv")
