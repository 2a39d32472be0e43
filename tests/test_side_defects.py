"""Small defects an adversarial pass found: each one's bad input gets one line naming the file, the
line and the reason, and each case is what a user would see from the command line."""
from __future__ import annotations

from cli_helpers import cli, invoke

KINETICS = "label,youtube_id,time_start,time_end,split\n"


def test_bias_on_rows_that_are_all_malformed_says_so_not_that_data_has_no_labels(tmp_path):
    data = tmp_path / "k.csv"
    data.write_text(KINETICS + "dog,aaaaaaaaaaa,10,5,val\ncat,bbbbbbbbbbb,x,5,val\n")
    result = invoke("bias", data, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "has no labels" not in result.output
    assert f"{data}: no label could be read (2 malformed rows of 2 rows), e.g. line 2: " in result.output
    assert "Traceback" not in result.output


def test_rows_malformed_or_with_bad_labels_beside_unlabelled_ones_are_each_counted(tmp_path):
    data = tmp_path / "k.csv"
    data.write_text(KINETICS + "dog,aaaaaaaaaaa,10,5,val\n\"a;b\",bbbbbbbbbbb,1,5,val\n,ccccccccccc,1,5,val\n")
    result = invoke("bias", data, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "(1 malformed row and 1 bad label of 3 rows, 1 row without a label), e.g. line 2" in result.output


def test_train_on_rows_that_are_all_malformed_says_so(tmp_path):
    data = tmp_path / "k.csv"
    data.write_text(KINETICS + "dog,aaaaaaaaaaa,10,5,val\ncat,bbbbbbbbbbb,1,x,val\n")
    result = cli("train", data, "--out", tmp_path / "model.pt", "--device", "cpu")
    assert result.exit_code == 2, result.output
    assert f"{data}: no label could be read (2 malformed rows of 2 rows)" in result.output
