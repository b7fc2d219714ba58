"""chapter.claim: printed with its verdict; asserted only in the course's own runs on its case study."""
import pytest

from course_utils import chapter, ledger


def test_claim_is_asserted_in_the_courses_own_runs(monkeypatch, capsys):
    monkeypatch.delenv("COURSE_DATASET", raising=False)
    monkeypatch.setenv("COURSE_STRICT", "1")
    chapter.claim(0.9 > 0.5, "pretrained beats scratch")
    assert capsys.readouterr().out == "[holds] pretrained beats scratch\n"
    with pytest.raises(AssertionError, match="pretrained beats scratch"):
        chapter.claim(0.4 > 0.5, "pretrained beats scratch")


def test_claim_never_stops_a_students_run(monkeypatch, capsys):
    """Without COURSE_STRICT (JupyterLab), a student's own parameters may break a claim: one line, no error."""
    monkeypatch.delenv("COURSE_DATASET", raising=False)
    monkeypatch.delenv("COURSE_STRICT", raising=False)
    assert chapter.claim(0.4 > 0.5, "pretrained beats scratch") is None
    assert capsys.readouterr().out == "[does not hold] pretrained beats scratch\n"


def test_claim_is_reported_on_a_students_dataset_even_when_strict(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("COURSE_DATASET", str(tmp_path / "dogs"))
    monkeypatch.setenv("COURSE_STRICT", "1")
    chapter.claim(0.9 > 0.5, "pretrained beats scratch")
    chapter.claim(0.4 > 0.5, "pretrained beats scratch")
    assert capsys.readouterr().out == ("[holds] pretrained beats scratch\n"
                                       "[does not hold on your dataset, dogs] pretrained beats scratch\n")


def test_strict_is_a_flag_with_a_clear_error(monkeypatch):
    monkeypatch.setenv("COURSE_STRICT", "maybe")
    with pytest.raises(ValueError, match="COURSE_STRICT=1"):
        chapter.claim(True, "x")


@pytest.mark.parametrize("fast, words", [("1", "judged in full mode"), ("0", "with a verdict")])
def test_heading_says_how_to_read_the_records(monkeypatch, capsys, fast, words):
    monkeypatch.setenv("COURSE_FAST", fast)
    ledger.heading()
    assert words in capsys.readouterr().out
