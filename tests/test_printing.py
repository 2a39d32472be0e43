"""What the CLI prints of the user's data: markup printed as text, control characters spelled out."""
import warnings

import pytest
from cli_helpers import cli, invoke

from avaudit.display import safe, visible

MARKUP_LABELS = ["[bold]loud[/bold]", "x[/y]"]


def test_visible_spells_out_control_characters_and_safe_escapes_markup():
    assert visible("a\x1b[2Jb\rc\nd\te\x07f\x9bg\u202eh") == "a\\x1b[2Jb\\rc\\nd\\te\\x07f\\x9bg\\u202eh"
    assert visible("plain ünïcode ✓") == "plain ünïcode ✓"
    assert safe("x[/y] [bold]b\x1b[0m") == "x\\[/y] \\[bold]b\\x1b[0m"


@pytest.fixture
def markup_model(renamed_model):
    """The tiny model with its first two classes renamed to labels that look like rich markup."""
    return renamed_model(MARKUP_LABELS)


def markup_manifest(planted, tmp_path):
    """Two clips, named with terminal escape codes, under the two markup labels."""
    lines = ["path,label"]
    for i, (clip, label) in enumerate(zip(sorted(planted.glob("*/*.mp4"))[:2], MARKUP_LABELS)):
        link = tmp_path / f"clip{i}\x1b]0;pwned\x07\x1b[2J.mp4"
        link.symlink_to(clip)
        lines.append(f"{link.name},{label}")
    lines.append("gone\x1b[31m.mp4," + MARKUP_LABELS[0])  # a missing file: its row is skipped
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "list.csv"


def test_markup_and_escape_codes_in_labels_paths_and_out_print_as_text(planted, markup_model, tmp_path, cache):
    import pandas as pd

    data = markup_manifest(planted, tmp_path)
    out = tmp_path / "out[/y]\x1b[2J"
    for command in ("bias", "missing-labels", "predict"):
        result = invoke(command, data, "--model", markup_model, "--out", out / command)
        assert result.exit_code == 1, (command, result.output, result.exception)
        assert "\x1b" not in result.output and "\x07" not in result.output
        assert f"outputs in {tmp_path}/out[/y]\\x1b[2J/{command}\n" in result.output
        assert "1 of 3 videos skipped (1 missing file): see " in result.output
        if command == "bias":  # the per-category table
            assert "│ [bold]loud[/bold] │" in result.output and "│ x[/y]" in result.output
    result = invoke("missing-labels", data, "--model", markup_model, "--out", out / "m", "--min-confidence", "0",
                    "--min-precision", "0")
    candidates = pd.read_csv(out / "m" / "missing_labels.csv", keep_default_na=False)
    assert len(candidates) and "\x1b" not in result.output
    for video_id in candidates["video_id"]:
        assert f"│ {visible(video_id)}" in result.output


def test_an_error_naming_a_path_with_markup_and_escapes_prints_it_as_text(planted, tmp_path):
    model = tmp_path / "[bold]m\x1b[2J.pt"
    result = cli("bias", planted, "--model", model)
    assert result.exit_code == 2
    assert result.output == (f"error: {tmp_path}/[bold]m\\x1b[2J.pt: no such checkpoint (train one with "
                             f"`avaudit train DATA --out {tmp_path}/[bold]m\\x1b[2J.pt`)\n")


def test_avaudit_warnings_print_as_one_safe_line(tmp_path, capsys):
    from avaudit.display import one_line_errors
    from avaudit.errors import AvauditWarning

    @one_line_errors
    def command():
        warnings.warn(f"cache {tmp_path}/[red]c\x1b[2J is read-only", AvauditWarning)

    command()
    assert capsys.readouterr().err == f"warning: cache {tmp_path}/[red]c\\x1b[2J is read-only\n"
