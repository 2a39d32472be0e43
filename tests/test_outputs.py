"""Output files: the CSV writer must give exactly pandas' bytes, quicker."""
import numpy as np
import pandas as pd

from avaudit.outputs import csv_text


def test_csv_text_is_pandas_to_csv_byte_for_byte():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=500) * 10, rng.uniform(size=500),
                        [0.0, -0.0, np.nan, np.inf, -np.inf, 1e20, -1e-7, 5e-7, 2.5e-6, 1.0000005, -0.1234565]])
    n = len(x)
    text = [f"a,b{i}" if i % 7 == 0 else f'q"{i}' if i % 11 == 0 else f"n\n{i}" if i % 13 == 0 else f"v{i}"
            for i in range(n)]
    frame = pd.DataFrame({"conf": x, "f32": x.astype(np.float32), "n": np.arange(n), "ok": np.arange(n) % 2 == 0,
                          "name": text, "plain": pd.array([f"id{i}" for i in range(n)], dtype="str"),
                          "mixed": [1.5 if i % 3 else "t" for i in range(n)], "with,comma": "x"})
    frame.loc[5, "name"] = None
    frame.loc[3, "plain"] = np.nan
    expected = frame.to_csv(index=False, float_format="%.6f", lineterminator="\n")
    assert csv_text(frame) == expected
    assert csv_text(frame.iloc[:0]) == frame.iloc[:0].to_csv(index=False, lineterminator="\n")
