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


def test_report_csvs_are_safe_in_a_spreadsheet_and_read_back_exactly(tmp_path):
    from avaudit.outputs import read_csv, write_csv

    text = ["=HYPERLINK(\"http://x\")", "-0.5", "@SUM(A1)", "+1", "\tx", "'=x", "''-x", "'x", "plain", "", "-"]
    frame = pd.DataFrame({"text": text, "conf": np.linspace(-1, 1, len(text)), "n": np.arange(-5, len(text) - 5),
                          "mixed": pd.Series([1.5, "=x", None, *"abcdefgh"], dtype=object)})
    write_csv(frame, tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text() == (
        "text,conf,n,mixed\n"
        "\"'=HYPERLINK(\"\"http://x\"\")\",-1.000000,-5,1.5\n"
        "'-0.5,-0.800000,-4,'=x\n"
        "'@SUM(A1),-0.600000,-3,\n"
        "'+1,-0.400000,-2,a\n"
        "'\tx,-0.200000,-1,b\n"
        "''=x,0.000000,0,c\n"
        "'''-x,0.200000,1,d\n"
        "'x,0.400000,2,e\n"
        "plain,0.600000,3,f\n"
        ",0.800000,4,g\n"
        "'-,1.000000,5,h\n")
    back = read_csv(tmp_path / "t.csv")
    assert back["text"].tolist() == text
    assert back["conf"].tolist() == [round(v, 6) for v in frame["conf"]] and back["n"].tolist() == frame["n"].tolist()
    assert back["mixed"].tolist() == ["1.5", "=x", "", *"abcdefgh"]


def test_report_csvs_written_a_block_of_rows_at_a_time_are_the_same_bytes(tmp_path):
    from avaudit.outputs import spreadsheet_safe, write_csv

    frame = pd.DataFrame({"text": ["=x", "a,b", 'q"', "n\nl", "plain", None, "-1", "z"] * 3,
                          "conf": np.linspace(-1, 1, 24), "n": np.arange(24)})
    frame.loc[4, "conf"] = np.nan
    for block in (1, 5, 24, 100):
        write_csv(frame, tmp_path / "t.csv", block=block)
        assert (tmp_path / "t.csv").read_text() == csv_text(spreadsheet_safe(frame)), block
    write_csv(frame.iloc[:0], tmp_path / "empty.csv", block=5)
    assert (tmp_path / "empty.csv").read_text() == "text,conf,n\n"


def test_an_object_or_categorical_columns_cells_are_tested_once_a_distinct_value(monkeypatch):
    """bias_videos.csv's label, layer, group and flags: a regular expression for every cell was most of the CPU time
    of writing it (~50 s of a 10M-row bias run); each distinct value is tested once, with the same cells escaped."""
    import re

    from avaudit import outputs

    values = ["=x", "plain", "", "-1", "'=y", "a"]
    cells = pd.Series([values[i % 6] for i in range(6000)], dtype=object)
    cells[7] = None
    frame = pd.DataFrame({"flags": cells, "layer": cells.astype("category"), "mixed": [1.5, "@x", None] * 2000})
    calls, match = [], re.match
    monkeypatch.setattr(outputs.re, "match", lambda *args: calls.append(args) or match(*args))
    safe = outputs.spreadsheet_safe(frame)
    monkeypatch.undo()
    assert len(calls) <= 3 * len(values)  # before: 8,005, one an object column's cell
    escaped = ["'" + v if v is not None and re.match(outputs.FORMULA, v) else v for v in cells]
    assert safe["flags"].tolist() == escaped and safe["layer"].fillna("").tolist() == [v or "" for v in escaped]
    assert safe["mixed"].tolist() == [1.5, "'@x", None] * 2000


def test_text_held_by_pyarrow_objects_or_categories_is_escaped_alike():
    """Text in pyarrow (matched there, a C++ regular expression a cell), as Python objects or as a categorical
    (each distinct value matched once): the same cells escaped."""
    from avaudit.outputs import spreadsheet_safe

    text = ["=x", "'+1", "-2+3", "@S", "\tx", "\rx", "''-x", "'x", "plain", "", None, "a=b", "-"] * 2
    kinds = {"pyarrow": pd.array(text, dtype=pd.StringDtype("pyarrow")), "object": pd.array(text, dtype=object),
             "category": pd.Categorical(text), "python": pd.array(text, dtype=pd.StringDtype("python"))}
    escaped = {name: spreadsheet_safe(pd.DataFrame({"t": values}))["t"].tolist() for name, values in kinds.items()}
    expected = [None if cell is None else "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r")
                or cell.lstrip("'")[:1] in ("=", "+", "-", "@", "\t", "\r") else cell for cell in text]
    for name, cells in escaped.items():
        assert [None if not isinstance(cell, str) else cell for cell in cells] == expected, name
