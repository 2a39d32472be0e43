"""localize on awkward file names and output locations: plain-text titles, no control characters
on the terminal, numbers without float noise, one line for an output it cannot write."""
import json
import os
import shutil
import warnings

import pytest
from cli_helpers import cli

from avaudit.localize import localize


@pytest.fixture
def clip(planted):
    return sorted(planted.glob("*/*.mp4"))[0]


def test_a_name_with_dollars_is_drawn_as_text_not_maths(clip, tiny_model, tmp_path):
    named = shutil.copyfile(clip, tmp_path / "price_$5_$.mp4")
    result = cli("localize", str(named), "--model", str(tiny_model), "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o" / "localize.json").read_text())["video"] == str(named)
    assert result.output.splitlines()[-1].startswith("note: the model knows ")  # not "DATA has no labels"


@pytest.mark.slow  # a whole run; the fast tier keeps a cheaper test of the same path
def test_control_characters_in_a_name_never_reach_a_warning(clip, tiny_model, tmp_path):
    named = shutil.copyfile(clip, tmp_path / "a\x1b[31mred\x07\r.mp4")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        localize(named, model=tiny_model, out=tmp_path / "o", timeline=True)
    shown = [str(w.message) for w in caught]
    assert not [text for text in shown if not text.isprintable()], shown


@pytest.mark.slow  # a whole run; the fast tier keeps a cheaper test of the same path
def test_localize_json_holds_rounded_numbers(clip, tiny_model, tmp_path):
    localize(clip, model=tiny_model, out=tmp_path, timeline=True)
    text = (tmp_path / "localize.json").read_text()
    info = json.loads(text)
    numbers = [info["peak_time"], *info["peak_xy_fraction"], *info["cell_fraction"], *info["response_per_step"],
               *sum(info["per_step_peak_xy_fraction"], []), *sum(info["per_second_confidence"].values(), [])]
    assert all(round(v, 4) == v for v in numbers)
    assert max(len(repr(v)) for v in numbers) <= 7  # 0.0173, never 0.01730000041425228


@pytest.mark.slow  # a whole run; the fast tier keeps a cheaper test of the same path
def test_an_earlier_timeline_is_removed_with_the_set_it_belonged_to(clip, tiny_model, tmp_path):
    localize(clip, model=tiny_model, out=tmp_path, timeline=True)
    localize(clip, model=tiny_model, out=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["localize.json", "localize.mp4", "localize.png"]


def test_localize_refuses_to_write_over_the_video_it_reads(clip, tiny_model, tmp_path):
    video = shutil.copyfile(clip, tmp_path / "localize.mp4")
    before = video.read_bytes()
    result = cli("localize", str(video), "--model", str(tiny_model), "--out", str(tmp_path))
    assert result.exit_code == 2
    assert " ".join(result.output.split()) == (f"error: {tmp_path}/localize.mp4 is DATA ({video}): refusing to "
                                               f"overwrite an input; choose another output path")
    assert video.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["localize.mp4"]


def test_an_output_folder_that_takes_no_file_is_one_line_before_any_work(clip, tiny_model, tmp_path):
    result = cli("localize", str(clip), "--model", str(tiny_model), "--out", "/proc/avaudit-out")
    assert result.exit_code == 2
    assert result.output.startswith("error: cannot write /proc/avaudit-out/localize.png: /proc does not take new "
                                    "files (")
    assert len(result.output.splitlines()) == 1
