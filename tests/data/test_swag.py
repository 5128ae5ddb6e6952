"""SWAG CSV reader on a file in rowanz/swagaf's exact layout (the dataset itself is not available offline)."""

from __future__ import annotations

import pytest

from bertkit.data.readers.swag import read_swag
from bertkit.data.validate import checked

HEADER = ",video-id,fold-ind,startphrase,sent1,sent2,gold-source,ending0,ending1,ending2,ending3,label\n"
ROW = (
    '0,anetv_jkn6uvmqwh4,3416,"Members of the procession walk down the street holding small horn brass instruments. '
    'A drum line","Members of the procession walk down the street holding small horn brass instruments.",'
    'A drum line,gold,"passes by walking down the street playing their instruments.",'
    '"has heard approaching them.","arrives and they\'re outside dancing and asleep.","turns the lead singer watches the performance.",0\n'
)


def test_swag_rows(tmp_path):
    path = tmp_path / "val.csv"
    path.write_text(HEADER + ROW + ROW.replace(",0\n", ",3\n"))
    a, b = read_swag(path)
    assert a.context == "Members of the procession walk down the street holding small horn brass instruments."
    assert a.question == "A drum line"
    assert (
        a.choices[0] == "passes by walking down the street playing their instruments." and len(a.choices) == 4
    )
    assert (a.label, b.label) == (0, 3)
    assert a.source.endswith("val.csv:2")


def test_swag_test_file_without_labels_and_errors(tmp_path):
    path = tmp_path / "test.csv"
    path.write_text(HEADER.replace(",label", "") + ROW.replace(",0\n", "\n"))
    (e,) = read_swag(path)
    assert e.label is None
    path.write_text(HEADER + ROW.replace(",0\n", ",7\n"))
    with pytest.raises(ValueError, match=r"test.csv:2: label 7 is outside 0..3"):
        checked(read_swag(path))
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="SWAG layout"):
        checked(read_swag(path))
