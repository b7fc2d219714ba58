"""The chapter-versus-measured ledger: what the textbook chapter claims, what this course measured.

A notebook cell computes a number, then records it next to the chapter's claim:

    ledger.record("fine-tuning after 5 epochs", says="94.77% val acc", measured=f"{acc:.3f}",
                  holds=acc >= 0.90, model=name)

prints one line a student reads under the cell, e.g.

    [holds] fine-tuning after 5 epochs: chapter 94.77% val acc; measured 0.954 (efficientnet_lite0, full mode)

(in fast mode `[fast run]` instead of a verdict: a shrunk run does not judge the chapter's numbers)
and, when COURSE_LEDGER names a file (the full-mode course run sets it), appends the record
there as one JSON line, so one command can print every chapter's claims in one table.
`holds=None` records a headline number that confronts no claim. Each chapter makes its records in
its last cell, "The chapter against this run", which `heading()` opens.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from . import settings

VERDICTS = {True: "holds", False: "does not hold", None: "measured"}


@dataclass(frozen=True)
class Record:
    """One line of the ledger: a claim of the textbook chapter next to the course's number."""
    claim: str          # what is claimed, in a few words
    says: str           # the chapter's statement or number ("" for a headline number)
    measured: str       # the course's number, formatted
    holds: bool | None  # True / False, or None for a number that confronts no claim
    model: str          # the model that produced the number
    mode: str           # "fast" or "full"

    def line(self) -> str:
        says = f"chapter {self.says}; " if self.says else ""
        verdict = "fast run" if self.mode == "fast" and self.holds is not None else VERDICTS[self.holds]
        return f"[{verdict}] {self.claim}: {says}measured {self.measured} ({self.model}, {self.mode} mode)"


Claim = Record  # the record's earlier name, kept for one release (not `chapter.claim`, which asserts)


def record(claim: str, says: str, measured, holds: bool | None, model: str) -> Record:
    """Print the claim next to the measured value and, if COURSE_LEDGER is set, append it there."""
    if holds is not None:
        holds = bool(holds)
    entry = Record(claim, says, str(measured), holds, model, "fast" if settings.fast() else "full")
    print(entry.line())
    path = settings.ledger_file()
    if path is not None:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps(asdict(entry)) + "\n")
    return entry


def heading() -> None:
    """One line that says how to read the records below it: judged (full mode) or listed (fast mode)."""
    if settings.fast():
        print("Fast mode: a shrunk run (fewer images, smaller images, fewer epochs). The textbook's numbers are "
              "judged in full mode; here each is listed beside this run's, marked [fast run].")
    else:
        print("Full mode: each line sets the textbook's statement beside this run's number, with a verdict. "
              "With other parameters or another dataset, a verdict describes your run, not the chapter.")


def read(path: Path | str) -> list[Record]:
    """The records a run appended to `path` (none if the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    return [Record(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def markdown(claims: list[Record]) -> str:
    """The records as a Markdown table: claim, chapter, measured, model, verdict."""
    rows = ["| claim | chapter says | measured | model | verdict |", "|---|---|---|---|---|"]
    rows += [f"| {c.claim} | {c.says or '–'} | {c.measured} | {c.model} | {VERDICTS[c.holds]} |" for c in claims]
    return "\n".join(rows)
