"""chapter.claim: asserted on the course's case study, reported on a student's dataset."""
import pytest

from course_utils import chapter


def test_claim_is_asserted_on_the_case_study(monkeypatch, capsys):
    monkeypatch.delenv("COURSE_DATASET", raising=False)
    chapter.claim(0.9 > 0.5, "pretrained beats scratch")
    with pytest.raises(AssertionError, match="pretrained beats scratch"):
        chapter.claim(0.4 > 0.5, "pretrained beats scratch")
    assert capsys.readouterr().out == ""


def test_claim_is_reported_on_a_students_dataset(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("COURSE_DATASET", str(tmp_path / "dogs"))
    chapter.claim(0.9 > 0.5, "pretrained beats scratch")
    assert capsys.readouterr().out == ""  # a claim that holds prints nothing
    chapter.claim(0.4 > 0.5, "pretrained beats scratch")
    assert capsys.readouterr().out == "[does not hold on your dataset, dogs] pretrained beats scratch\n"
