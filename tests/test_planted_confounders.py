"""make-samples --confounders: every kind planted where its truth file says, exact copies byte-identical,
duplicates across splits, and a set too small for its duplicates refused before anything is written."""
import csv

import av
import pytest
from cli_helpers import cli

from avaudit import planted
from avaudit.errors import UsageError
from avaudit.planted_confounders import DUPLICATE_KINDS, KINDS, REENCODE_SIZES


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_every_kind_is_planted_with_its_truth_and_the_manifest_lists_every_clip(tmp_path):
    root = tmp_path / "set"
    planted.make_samples(root, seed=3, clips_per_category=1, two_event_per_category=0, confounders=2)
    truth, manifest = rows(root / "confounders_truth.csv"), rows(root / "manifest.csv")
    assert sorted({r["kind"] for r in truth}) == sorted(KINDS) and len(truth) == 2 * len(KINDS)
    assert len(manifest) == 16 + len(truth) and {r["split"] for r in manifest} <= {"train", "test"}
    assert all((root / r["path"]).stat().st_size > 0 for r in manifest)
    split = {r["path"]: r["split"] for r in manifest}
    duplicates = [r for r in truth if r["kind"] in DUPLICATE_KINDS]
    assert all(r["source"] in split and r["path"].split("/")[0] == r["source"].split("/")[0] for r in duplicates)
    assert len({r["source"] for r in duplicates}) == len(duplicates)
    assert any(r["split"] != split[r["source"]] for r in duplicates)
    assert any(r["split"] == split[r["source"]] for r in duplicates)
    for r in duplicates:
        same = (root / r["path"]).read_bytes() == (root / r["source"]).read_bytes()
        assert same == (r["kind"] == "exact"), r
    assert not any(r["source"] for r in truth if r["kind"] not in DUPLICATE_KINDS)
    reencoded = next(r["path"] for r in truth if r["kind"] == "reencoded")
    with av.open(str(root / reencoded)) as container:
        assert container.streams.video[0].codec_context.width in REENCODE_SIZES


def test_a_set_too_small_for_its_duplicates_is_refused_and_leaves_nothing(tmp_path):
    with pytest.raises(UsageError, match="need 20 clips to duplicate, and the set has 16"):
        planted.make_samples(tmp_path / "set", clips_per_category=1, two_event_per_category=0, confounders=5)
    assert not any(tmp_path.iterdir())


def test_make_samples_plants_confounders_on_request(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(planted, "_write_set", lambda root, plans, **kw: None)
    monkeypatch.setattr(planted, "_plant_confounders", lambda root, plans, **kw: seen.update(kw))
    assert cli("make-samples", str(tmp_path / "a"), "--clips", "1").exit_code == 0 and seen == {}
    result = cli("make-samples", str(tmp_path / "b"), "--clips", "1", "--confounders")
    assert result.exit_code == 0 and seen["per_kind"] == 20
    assert result.output.splitlines()[-1] == ("140 confounders planted beside them: manifest.csv gives every clip's "
                                              "split, confounders_truth.csv what was planted where")
