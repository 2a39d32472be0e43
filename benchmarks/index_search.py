"""The cache index's search: numpy's searchsorted against blocks.SortedSearch, side by side in one run.

    python benchmarks/index_search.py [N ...]        (default: 1,000,000 and 10,000,000 keys)

N random 64-bit key halves, sorted (the index), are looked up as an audit locates its rows: in blocks of
LOCATE_BLOCK keys in manifest order, each block sorted first for numpy (sorted keys are numpy's quickest case).
Prints the CPU seconds of each and their ratio; both give the same positions (checked on every block).
"""
from __future__ import annotations

import sys
import time

import numpy as np

from avaudit.inference.blocks import LOCATE_BLOCK, SortedSearch


def numpy_search(values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """np.searchsorted of a block of keys, sorted first (numpy's search starts where the last one ended)."""
    order = np.argsort(wanted)
    at = np.empty(len(wanted), np.intp)
    at[order] = np.searchsorted(values, wanted[order])
    return at


def main() -> None:
    rng = np.random.default_rng(0)
    for n in [int(arg) for arg in sys.argv[1:]] or [1_000_000, 10_000_000]:
        values = np.sort(rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False))
        wanted = values[rng.permutation(n)]
        seconds, searches = {}, {"numpy": lambda: (lambda block: numpy_search(values, block)),
                                 "SortedSearch": lambda: SortedSearch(values)}
        for name, make in searches.items():
            started = time.process_time()
            search = make()  # SortedSearch's table is part of its cost
            found = [search(wanted[first : first + LOCATE_BLOCK]) for first in range(0, n, LOCATE_BLOCK)]
            seconds[name] = time.process_time() - started
            assert np.array_equal(values[np.concatenate(found)], wanted)
        print(f"{n:>12,} keys  numpy {seconds['numpy']:6.2f} CPU-s  SortedSearch {seconds['SortedSearch']:6.2f}  "
              f"ratio {seconds['SortedSearch'] / seconds['numpy']:.2f}x", flush=True)


if __name__ == "__main__":
    main()
