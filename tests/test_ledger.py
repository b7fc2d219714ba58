"""The claims ledger: one printed line per claim, JSON lines when COURSE_LEDGER is set."""
from course_utils import ledger


def test_record_prints_the_verdict_and_the_model(capsys, monkeypatch):
    monkeypatch.delenv("COURSE_LEDGER", raising=False)
    monkeypatch.setenv("COURSE_FAST", "0")
    entry = ledger.record("scratch accuracy", "60-70%", "0.569", holds=0.569 >= 0.6, model="efficientnet_lite0")
    out = capsys.readouterr().out
    assert out == ("[does not hold] scratch accuracy: chapter 60-70%; measured 0.569 "
                   "(efficientnet_lite0, full mode)\n")
    assert entry.holds is False and entry.mode == "full"


def test_a_fast_run_lists_the_number_without_judging_it(capsys, monkeypatch):
    """Three epochs on 40 images per class do not refute the chapter: no verdict printed, the record keeps it."""
    monkeypatch.delenv("COURSE_LEDGER", raising=False)
    monkeypatch.setenv("COURSE_FAST", "1")
    entry = ledger.record("full fine-tuning", "92%-97%", "0.825", holds=False, model="efficientnet_lite0")
    assert capsys.readouterr().out == ("[fast run] full fine-tuning: chapter 92%-97%; measured 0.825 "
                                       "(efficientnet_lite0, fast mode)\n")
    assert entry.holds is False
    ledger.record("headline", "", "0.9", holds=None, model="m")
    assert capsys.readouterr().out.startswith("[measured] headline")


def test_record_appends_json_lines_that_read_back(tmp_path, monkeypatch, capsys):
    path = tmp_path / "ledger.jsonl"
    monkeypatch.setenv("COURSE_LEDGER", str(path))
    monkeypatch.setenv("COURSE_FAST", "1")
    first = ledger.record("a", "1", 1.0, True, "m")
    second = ledger.record("b", "", "2", None, "m")
    assert ledger.read(path) == [first, second]
    assert second.mode == "fast" and "[measured] b: measured 2 (m, fast mode)" in capsys.readouterr().out
    table = ledger.markdown(ledger.read(path))
    assert "| a | 1 | 1.0 | m | holds |" in table and "| b | – | 2 | m | measured |" in table


def test_read_of_a_missing_file_is_empty(tmp_path):
    assert ledger.read(tmp_path / "none.jsonl") == []
