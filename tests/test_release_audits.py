"""`avaudit bias` on every release layout: the real annotation file, a clip or two placed where the
release puts them, every other row a `missing file`, and the tiny model with its classes renamed to
the labels of the placed clips (the shipped model does not know these datasets' labels)."""
import shutil
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import invoke

DATA = Path(__file__).parent / "data" / "manifests"

# fixture file, the files placed -> their labels, videos the file lists
LAYOUTS = {
    "kinetics-400": ("kinetics-400_val_head300.csv", {"val/abseiling/0wR5jVB-WPk_000417_000427.mp4": ["abseiling"]},
                     300),
    "kinetics-700": ("kinetics-700_validate_head300.csv",
                     {"val/testifying/---QUuC4vJs_000084_000094.mp4": ["testifying"]}, 300),
    "vggsound": ("vggsound_real_head.csv", {"---g-f_I2yQ_000001.mp4": ["people marching"]}, 80),
    "vggsound-list": ("vggsound_AStest_head300.csv",
                      {"GteozUDpJRc_000030.mp4": ["engine accelerating, revving, vroom"]}, 300),
    "ave": ("AVE_Annotations.txt", {"AVE/0f_iTO5t3hU.mp4": ["Ukulele", "Banjo", "Mandolin"],
                                    "AVE/RUhOCu3LNXM.mp4": ["Church bell"]}, 4097),
    "llp": ("AVVP_val_pd.csv", {"LLP_dataset/video/4O9rI-FpqLg.mp4": ["Cheering", "Speech", "Clapping"]}, 649),
    "llp-events-audio": ("AVVP_eval_audio.csv", {"video/KSRjje7GH44.mp4": ["Blender", "Speech"]}, 1848),
    "llp-events-visual": ("AVVP_eval_visual.csv", {"video/KSRjje7GH44.mp4": ["Blender"]}, None),
    "audioset": ("audioset_eval_segments_head40.csv", {"--BfvyPmVMo_20.000_30.000.mp4": ["Hammer"]}, 40),
}


@pytest.fixture(scope="module")
def release_model(renamed_model):
    """The tiny model with its first classes renamed to every label the placed clips carry."""
    labels = sorted({label for _, files, _ in LAYOUTS.values() for names in files.values() for label in names})
    return renamed_model(labels, sort=True)


FAST = {"ave", "audioset"}  # the edit loop's share; the slow tier audits every layout


@pytest.mark.parametrize("layout", [layout if layout in FAST else pytest.param(layout, marks=pytest.mark.slow)
                                    for layout in LAYOUTS])
def test_bias_on_each_release_layout(layout, tmp_path, planted, release_model):
    name, files, n_videos = LAYOUTS[layout]
    src = Path(shutil.copyfile(DATA / name, tmp_path / name))
    if layout == "audioset":
        shutil.copyfile(DATA / "class_labels_indices.csv", tmp_path / "class_labels_indices.csv")
    if n_videos is None:
        n_videos = pd.read_csv(src, sep="\t", dtype=str)["filename"].nunique()
    clip = sorted(planted.glob("*/*.mp4"))[0]
    for relative in files:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip, tmp_path / relative)
    out = tmp_path / "out"
    result = invoke("bias", src, "--model", release_model, "--out", out)
    assert result.exit_code == 1, result.output
    videos = pd.read_csv(out / "bias_videos.csv", keep_default_na=False)
    expected = sorted((Path(relative).name, label) for relative, labels in files.items() for label in labels)
    assert sorted(zip(videos["path"].map(lambda p: Path(p).name), videos["label"])) == expected
    skipped = pd.read_csv(out / "bias_skipped.csv", keep_default_na=False)
    assert len(skipped) == n_videos - len(files) and set(skipped["reason"]) == {"missing file"}
    example = skipped["path"].iloc[0]
    found = f"{len(files)} of {n_videos:,} files found under {tmp_path}; e.g. {example}"
    assert f"note: {found}" in result.output.splitlines()
    assert f"{n_videos - len(files):,} of {n_videos:,} videos skipped ({n_videos - len(files):,} missing file)" \
        in result.output


def test_retarget_of_ave_keeps_every_line_of_a_multilabel_video(tmp_path, planted, release_model):
    src = Path(shutil.copyfile(DATA / "AVE_Annotations.txt", tmp_path / "AVE_Annotations.txt"))
    clip = sorted(planted.glob("*/*.mp4"))[0]
    (tmp_path / "AVE").mkdir()
    shutil.copyfile(clip, tmp_path / "AVE" / "0f_iTO5t3hU.mp4")
    out = tmp_path / "retarget" / "subset.txt"
    result = invoke("retarget", src, "--model", release_model, "--out", out, "--keep", "audiovisual", "--keep", "audio",
                    "--keep", "visual", "--keep", "redundant", "--keep", "unclear")
    assert result.exit_code == 1, result.output
    lines = src.read_text().splitlines()
    assert out.read_text() == "".join(line + "\n" for line in lines if "&0f_iTO5t3hU&" in line)
    assert len(out.read_text().splitlines()) == 3
