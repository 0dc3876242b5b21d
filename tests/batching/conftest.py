"""Batching test fixtures: small hand-made questions."""

from __future__ import annotations

import pytest

from qaembed.records import Answer, QARecord


@pytest.fixture()
def qa_records() -> list[QARecord]:
    """Eight questions: 1-4 answers, one all-tied question, one answer text shared by two questions."""

    def q(qid: str, title: str, answers: list[tuple[str, float]]) -> QARecord:
        return QARecord(
            id=qid,
            title=title,
            body=f"details of {title}",
            answers=[Answer(id=f"{qid}.a{j}", text=text, score=score) for j, (text, score) in enumerate(answers)],
        )

    return [
        q("q0", "how to brew a stout", [("roast barley and patience", 10), ("use lots of hops", 5), ("buy one", 0)]),
        q("q1", "what is a lager", [("a bottom fermented beer", 7), ("cold storage beer", 3)]),
        q("q2", "why is beer bitter", [("hops", 4)]),
        q("q3", "is ale a beer", [("yes it is", 2), ("ale is beer", 2), ("sure", 2)]),  # all tied
        q("q4", "does foam matter", [("carbonation and proteins", 6), ("buy one", 1)]),  # "buy one" shared with q0
        q("q5", "how long to ferment", [("two weeks for ales", 9), ("a month for lagers", 8), ("depends", 1), ("?", -2)]),
        q("q6", "best glass for wheat beer", [("a tall weizen glass", 3)]),
        q("q7", "can I age an IPA", [("no, hops fade", 12), ("a little", 4)]),
    ]
