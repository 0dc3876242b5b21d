"""The real Stack Exchange dumps reproduce the reference counts in shared/data/README.md."""

import pytest

from qaembed.data.stackexchange import StackExchangeDump
from qaembed.data.stats import compute_stats

# site: (questions, answers, questions with answers, questions with 2+ answers, of those all tied)
REFERENCE_COUNTS = {
    "beer.stackexchange.com": (663, 1572, 644, 410, 22),
    "coffee.stackexchange.com": (225, 327, 212, 82, 6),
    "genai.stackexchange.com": (181, 243, 142, 58, 9),
    "matheducators.stackexchange.com": (397, 1507, 384, 311, 9),
    "quantumcomputing.stackexchange.com": (612, 1060, 569, 309, 30),
}


@pytest.mark.parametrize("site", sorted(REFERENCE_COUNTS))
def test_reference_counts(shared_data, site):
    adapter = StackExchangeDump(shared_data / "stackexchange" / site, progress=False)
    stats = compute_stats(adapter.records())
    assert (stats["questions"], stats["answers"], stats["questions_with_answers"],
            stats["questions_with_2plus_answers"], stats["tied_questions"]) == REFERENCE_COUNTS[site]
    assert adapter.policy.counts == {} and adapter.notes["orphan_answers"] == 0
