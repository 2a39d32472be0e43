"""Pictures: user text drawn as it is, and Table 3's names legible."""
import pytest

from avaudit import plots
from avaudit.vocab import ASSIGNMENTS, UNCLEAR_TYPE


def test_plain_text_writes_control_characters_as_escapes():
    assert plots.plain("price_$5_$ \x1b[31m\x07\r.mp4") == "price_$5_$ \\x1b[31m\\x07\\r.mp4"


def test_table_3s_names_under_their_bars_do_not_overlap(monkeypatch):
    drawn = []
    monkeypatch.setattr(plots, "png_bytes", lambda figure: drawn.append(figure) or b"")
    counts = {name: i for i, name in enumerate((*ASSIGNMENTS[:3], UNCLEAR_TYPE, *ASSIGNMENTS[3:]))}
    plots.layer_bars(counts, title="rule $sufficiency$, raw confidence")
    figure = drawn[0]
    renderer = figure.canvas.get_renderer()
    axis = figure.axes[0]
    names = [label.get_window_extent(renderer) for label in axis.get_xticklabels()]
    assert [label.get_text() for label in axis.get_xticklabels()] == list(counts)
    assert all(left.x1 < right.x0 for left, right in zip(names, names[1:]))
    assert axis.title.get_text() == "rule $sufficiency$, raw confidence"  # as written, not as maths
    plots._pyplot().close(figure)


@pytest.mark.parametrize("title", ["price_$5_$", "$\\frac{", "a_$b$_c"])
def test_titles_that_look_like_maths_draw(title, monkeypatch):
    assert plots.layer_bars({"audio": 1}, title=title)[:8] == b"\x89PNG\r\n\x1a\n"
