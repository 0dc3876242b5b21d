"""The single losses by name (every loss except ``multitask``, whose parts are drawn from this set)."""

from __future__ import annotations

from qaembed.losses.base import RankingLoss
from qaembed.losses.cosine_pair import CosinePairLoss
from qaembed.losses.infonce import InfoNCELoss
from qaembed.losses.listwise import ListwiseLoss
from qaembed.losses.mse import VoteRegressionLoss
from qaembed.losses.multiple_positives import MultiplePositivesLoss
from qaembed.losses.pair_bce import PairBCELoss
from qaembed.losses.relaxed_hard_negative import RelaxedHardNegativeLoss
from qaembed.losses.triplet import TripletLoss

SINGLE_LOSSES: dict[str, type[RankingLoss]] = {
    cls.name: cls
    for cls in (
        InfoNCELoss,
        MultiplePositivesLoss,
        RelaxedHardNegativeLoss,
        TripletLoss,
        ListwiseLoss,
        VoteRegressionLoss,
        CosinePairLoss,
        PairBCELoss,
    )
}
