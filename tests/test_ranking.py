"""Removing the lowest scores: exactly the k lowest, ties first come, across tensors and chunks."""
import pytest
import torch

from compress import ranking


def _reference(scores: list[torch.Tensor], n_remove: int) -> list[torch.Tensor]:
    """What a stable sort of all scores joined gives (the first of equal scores go first)."""
    flat = torch.cat([s.flatten().float() for s in scores])
    order = torch.sort(flat, stable=True).indices
    keep = torch.ones_like(flat, dtype=torch.bool)
    keep[order[:n_remove]] = False
    return list(keep.split([s.numel() for s in scores]))


def test_the_lowest_scores_go_exactly_and_ties_at_the_threshold_go_first_come(monkeypatch):
    scores = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 3.0])
    assert ranking.keep_all_but(scores, 2).tolist() == [True, False, False, True, True, True, True]
    assert not ranking.keep_all_but(scores, 7).any() and ranking.keep_all_but(scores, 0).all()
    monkeypatch.setattr(ranking, "_CHUNK", 3)  # ties resolved across several chunks
    big = torch.cat([torch.zeros(10), torch.arange(1.0, 11.0)])
    keep = ranking.keep_all_but(big, 7)
    assert (~keep).nonzero().flatten().tolist() == list(range(7)) and int(keep.sum()) == 13


@pytest.mark.parametrize("chunk", [5, 1 << 24])
def test_many_tensors_rank_as_one_joined_tensor_signs_infinities_and_zeros_included(monkeypatch, chunk):
    monkeypatch.setattr(ranking, "_CHUNK", chunk)
    gen = torch.Generator().manual_seed(0)
    noisy = torch.randn(40, 7, generator=gen)
    noisy[0, :3] = float("-inf")  # already pruned weights
    noisy[1, :4] = -0.0
    noisy[2, :4] = 0.0  # -0.0 and 0.0 are equal scores: ties, first come
    coarse = torch.randint(-3, 4, (300,), generator=gen).float()  # many ties, negative keys too
    tiny = torch.tensor([1e-30, -1e-30, 3e38, -3e38])
    scores = [noisy, coarse, tiny]
    for n_remove in (1, 3, 7, 10, 150, 280, 400, 583, 584):
        got = ranking.keep_all_but_many(scores, n_remove)
        for g, want, s in zip(got, _reference(scores, n_remove), scores):
            assert g.shape == s.shape and torch.equal(g.flatten(), want), n_remove
    assert [m.all() for m in ranking.keep_all_but_many(scores, 0)] == [True] * 3
    assert [m.any() for m in ranking.keep_all_but_many(scores, 10**6)] == [False] * 3


def test_half_and_double_precision_scores_remove_exactly_as_many():
    scores = torch.tensor([0.5, -2.0, 0.25, 0.5, 8.0], dtype=torch.float16)
    assert ranking.keep_all_but(scores, 3).tolist() == [False, False, False, True, True]
    close = torch.tensor([1.0, 1.0 + 1e-12, 1.0 + 2e-12, 5.0], dtype=torch.float64)  # equal in float32
    assert int((~ranking.keep_all_but(close, 2)).sum()) == 2


def test_keep_top_always_keeps_one_below_100_percent():
    scores = torch.ones(10)
    assert int(ranking.keep_top(scores, 99.9).sum()) == 1 and int(ranking.keep_top(scores, 100).sum()) == 0
    assert int(ranking.keep_top(scores, 30).sum()) == 7
