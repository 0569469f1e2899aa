"""Group estimators over variable-size groups (``groups`` as prompt ids), and the second-wave estimators
(OPO, GPG, pass@k, ReMax, GDPO) of `rlvr.algorithms.parts.advantages`: hand-computed values and edge cases.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch

from rlvr.algorithms.parts import advantages as adv
from rlvr.algorithms.parts.shaping import zero_variance_groups

NAN, INF = float("nan"), float("inf")
R2, R3 = math.sqrt(2), math.sqrt(3)


def t(*rows: object) -> torch.Tensor:
    return torch.tensor(rows if len(rows) > 1 else rows[0], dtype=torch.float64)


def ids(*xs: int) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.long)


def close(a: torch.Tensor, b: object, tol: float = 1e-9) -> None:
    b = b if isinstance(b, torch.Tensor) else torch.tensor(b, dtype=a.dtype)
    torch.testing.assert_close(a, b.to(a.dtype), rtol=tol, atol=tol)


# ------------------------------------------------------------------ group_index


def test_group_index_int_and_ids() -> None:
    dense, sizes = adv.group_index(2, 6)
    assert dense.tolist() == [0, 0, 1, 1, 2, 2] and sizes.tolist() == [2, 2, 2]
    # ids in any order, not dense, negative allowed: numbered by first appearance (7 -> 0, -3 -> 1, 9 -> 2)
    dense, sizes = adv.group_index(ids(7, -3, 7, 9, -3, -3), 6)
    assert dense.tolist() == [0, 1, 0, 2, 1, 1] and sizes.tolist() == [2, 3, 1]
    dense, sizes = adv.group_index(ids(), 0)
    assert dense.numel() == 0 and sizes.numel() == 0


def test_group_index_rejects_bad_layouts() -> None:
    with pytest.raises(ValueError, match="do not form groups of 4"):
        adv.group_index(4, 6)
    with pytest.raises(ValueError, match="must be \\[N\\] with N = 3"):
        adv.group_index(ids(0, 0), 3)
    with pytest.raises(TypeError, match="integer tensor"):
        adv.group_index(torch.tensor([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match="do not form groups of 2"):
        adv.group_mean_std(t([1, 0, 1]), 2)
    with pytest.raises(ValueError, match="must be \\[N\\] with N = 3"):
        adv.leave_one_out(t([1, 0, 1]), ids(0, 0, 1, 1))


# ------------------------------------------------------------------ a batch of groups of sizes 2, 3 and 5
# Interleaved, ids not dense: id 5 = group A (size 2), id 9 = group B (size 3), id 2 = group C (size 5).
#   A = [1, 0]          mean 1/2  deviations ±1/2
#   B = [1, 0, 0]       mean 1/3  deviations 2/3, -1/3, -1/3
#   C = [2, 0, 1, 1, 1] mean 1    deviations 1, -1, 0, 0, 0
MIXED_IDS = ids(5, 9, 5, 2, 9, 2, 2, 9, 2, 2)
MIXED = t([1, 1, 0, 2, 0, 0, 1, 0, 1, 1])
# which member of which group each position holds
WHO = ["A", "B", "A", "C", "B", "C", "C", "B", "C", "C"]


def per_position(values: dict[str, list[float]]) -> list[float]:
    """Per-group value lists (in each group's member order) spread onto the interleaved positions."""
    seen: dict[str, int] = {}
    out = []
    for g in WHO:
        out.append(values[g][seen.get(g, 0)])
        seen[g] = seen.get(g, 0) + 1
    return out


def test_mixed_sizes_grpo_by_hand() -> None:
    # A: unbiased var (1/4 + 1/4)/1 = 1/2, std 1/√2 -> A = ±(1/2)·√2 = ±1/√2
    # B: Σdev² = 4/9 + 1/9 + 1/9 = 2/3, unbiased var (2/3)/2 = 1/3, std 1/√3 -> 2/√3, -1/√3, -1/√3
    # C: Σdev² = 2, unbiased var 2/4 = 1/2, std 1/√2 -> √2, -√2, 0, 0, 0
    want = per_position({"A": [1 / R2, -1 / R2], "B": [2 / R3, -1 / R3, -1 / R3], "C": [R2, -R2, 0, 0, 0]})
    close(adv.group_mean_std(MIXED, MIXED_IDS, eps=0.0), want)
    # population std: A 1/2 -> ±1; B sqrt(2/9) = √2/3 -> (2/3)/(√2/3) = √2, -1/√2; C sqrt(2/5) -> ±sqrt(5/2)
    s52 = math.sqrt(2.5)
    want = per_position({"A": [1, -1], "B": [R2, -1 / R2, -1 / R2], "C": [s52, -s52, 0, 0, 0]})
    close(adv.group_mean_std(MIXED, MIXED_IDS, std_mode="population", eps=0.0), want)


def test_mixed_sizes_rloo_dr_grpo_lite_by_hand() -> None:
    # RLOO, R_i - mean of the others: A: 1 - 0 = 1, 0 - 1 = -1
    #   B: 1 - (0+0)/2 = 1, 0 - (1+0)/2 = -1/2 (twice); C: 2 - 3/4 = 5/4, 0 - 5/4 = -5/4, 1 - (2+0+1+1)/4 = 0
    close(adv.leave_one_out(MIXED, MIXED_IDS),
          per_position({"A": [1, -1], "B": [1, -0.5, -0.5], "C": [1.25, -1.25, 0, 0, 0]}))
    centred = per_position({"A": [0.5, -0.5], "B": [2 / 3, -1 / 3, -1 / 3], "C": [1, -1, 0, 0, 0]})
    close(adv.group_mean(MIXED, MIXED_IDS), centred)
    # Lite PPO: batch mean 7/10; Σ(R - 0.7)² = 5·0.09 + 4·0.49 + 1.69 = 0.45 + 1.96 + 1.69 = 4.1; unbiased /9
    std_b = math.sqrt(4.1 / 9)
    close(adv.group_mean_batch_std(MIXED, MIXED_IDS, eps=0.0), [c / std_b for c in centred])


def test_mixed_sizes_nft_and_zero_variance_by_hand() -> None:
    correct = t([1, 1, 0, 0, 0, 1, 0, 1, 1, 0])  # A = [1, 0], B = [1, 0, 1], C = [0, 1, 0, 1, 0]
    r_hat, c = adv.nft_rates(correct, MIXED_IDS, reward_kind="binary")
    close(r_hat, per_position({"A": [0.5] * 2, "B": [2 / 3] * 3, "C": [0.4] * 5}))
    close(c, correct)
    # zero-variance flags in dense-id order (first appearance: id 5, id 9, id 2)
    # A = [1, 1] flat, B = [1, 0, 0], C = [0, 0, 1, 0, 0]
    assert zero_variance_groups(t([1, 1, 1, 0, 0, 0, 1, 0, 0, 0]), MIXED_IDS).tolist() == [True, False, False]
    # A = [1, 0], B = [0, 0, 0] flat, C all 0 flat
    assert zero_variance_groups(t([1, 0, 0, 0, 0, 0, 0, 0, 0, 0]), MIXED_IDS).tolist() == [False, True, True]
    assert zero_variance_groups([True, False, True], ids(3, 8, 3)).tolist() == [True, True]


def test_singletons_among_larger_groups_follow_the_singleton_rule() -> None:
    r, g = t([1, 0, 3]), ids(0, 0, 1)  # a pair [1, 0] and a singleton [3]
    h = 0.5 / (math.sqrt(0.5) + 1e-6)
    close(adv.group_mean_std(r, g), [h, -h, 3 / (1 + 1e-6)])  # verl: μ = 0, σ = 1 for the singleton
    close(adv.group_mean_std(r, g, std_mode="population"), [0.5 / (0.5 + 1e-6), -0.5 / (0.5 + 1e-6), 3 / (1 + 1e-6)])
    close(adv.group_mean_std(r, g, singleton="zero"), [h, -h, 0.0])
    close(adv.group_mean(r, g), [0.5, -0.5, 3.0])
    close(adv.group_mean(r, g, singleton="zero"), [0.5, -0.5, 0.0])
    close(adv.leave_one_out(r, g), [1.0, -1.0, 0.0])
    # Lite PPO: the singleton is its own mean -> 0; batch std of [1, 0, 3]: mean 4/3, Σdev² = 1/9+16/9+25/9 = 42/9
    close(adv.group_mean_batch_std(r, g, eps=0.0), [0.5 / math.sqrt(21 / 9), -0.5 / math.sqrt(21 / 9), 0.0])
    r_hat, _ = adv.nft_rates(t([1, 0, 1]), g, reward_kind="binary", clamp=None)
    close(r_hat, [0.5, 0.5, 0.5])
    r_hat, _ = adv.nft_rates(t([1, 1, -1]), g, reward_kind="pm1", clamp=None)  # pair mean 1 -> 1; singleton 0.5
    close(r_hat, [1.0, 1.0, 0.5])


# ------------------------------------------------------------------ OPO


def test_opo_by_hand() -> None:
    # X (size 3): R [1, 0, 0], |o| [2, 4, 6]: b = 2·1/12 = 1/6 -> 5/6, -1/6, -1/6  (plain mean would be 1/3)
    # Y (size 2): R [1, 0], |o| [3, 1]: b = 3/4 -> 1/4, -3/4
    # Z singleton: b = 0 -> A = R = 0.5;  W all equal [1, 1] -> 0;  V no tokens at all [1, 0], |o| = 0 -> 0
    r = t([1, 0, 0, 1, 0, 0.5, 1, 1, 1, 0])
    g = ids(0, 0, 0, 1, 1, 2, 3, 3, 4, 4)
    lengths = torch.tensor([2, 4, 6, 3, 1, 5, 3, 7, 0, 0])
    close(adv.opo(r, g, lengths), [5 / 6, -1 / 6, -1 / 6, 0.25, -0.75, 0.5, 0.0, 0.0, 0.0, 0.0], tol=1e-12)
    # all-equal non-dyadic rewards: exactly 0, though Σ|o|R/Σ|o| = 0.30000000000000004/3 rounds off 0.1
    assert (t([0.1, 0.1, 0.1]).sum() / 3).item() != 0.1
    assert adv.opo(t([0.1, 0.1, 0.1]), 3, [1, 1, 1]).abs().max().item() == 0.0
    assert adv.opo(t([0.7, 0.7, 0.7, 0.2]), ids(0, 0, 0, 1), [1, 1, 1, 3]).tolist() == [0.0, 0.0, 0.0, 0.2]
    # equal lengths: OPO is Dr. GRPO
    close(adv.opo(MIXED, MIXED_IDS, [4] * 10), adv.group_mean(MIXED, MIXED_IDS), tol=1e-12)
    with pytest.raises(ValueError, match="lengths must be \\[N\\]"):
        adv.opo(r, g, [1, 2])
    with pytest.raises(ValueError, match=">= 0"):
        adv.opo(t([1, 0]), 2, [1, -1])


# ------------------------------------------------------------------ GPG


def test_gpg_by_hand() -> None:
    # sizes 2, 3, 5 with the pair flat [1, 1]: B = 10, M = 2 -> α = 10/8 = 1.25
    # B = [1, 0, 0] (mean 1/3), C = [2, 0, 1, 1, 1] (mean 1): A = 1.25·(R - μ); the flat pair 0
    r = MIXED.clone()
    r[2] = 1.0  # group A = [1, 1]
    want = per_position({"A": [0, 0], "B": [1.25 * 2 / 3, -1.25 / 3, -1.25 / 3], "C": [1.25, -1.25, 0, 0, 0]})
    close(adv.gpg(r, MIXED_IDS), want, tol=1e-12)
    # a singleton is flat (its own mean): [1, 0 | 3]: B = 3, M = 1, α = 3/2 -> 0.75, -0.75, 0
    close(adv.gpg(t([1, 0, 3]), ids(0, 0, 1)), [0.75, -0.75, 0.0])
    # no group with signal: α = 1 and all zeros; none flat: α = 1 and A = R - μ
    close(adv.gpg(t([1, 1, 0, 0]), 2), [0.0] * 4)
    close(adv.gpg(MIXED, MIXED_IDS), adv.group_mean(MIXED, MIXED_IDS), tol=1e-12)


# ------------------------------------------------------------------ pass@k


def _passk_enumerated(correct: list[int], k: int) -> list[float]:
    """pass@k advantages by enumerating k-subsets: R̄ = share of subsets holding a correct response; a
    negative's C(n_neg-1, k-1)/C(n-1, k-1) = share of the subsets holding it that are all wrong."""
    n = len(correct)
    subsets = list(itertools.combinations(range(n), k))
    r_bar = sum(any(correct[j] for j in s) for s in subsets) / len(subsets)
    sigma = math.sqrt(r_bar * (1 - r_bar))
    out = []
    for i, c in enumerate(correct):
        if c:
            out.append((1 - r_bar) / (sigma + 1e-6))
        else:
            mine = [s for s in subsets if i in s]
            out.append((1 - r_bar - sum(not any(correct[j] for j in s) for s in mine) / len(mine)) / (sigma + 1e-6))
    return out


def test_pass_at_k_by_hand() -> None:
    # interleaved groups (ids as MIXED_IDS): A = [1, 0], B = [1, 0, 0], C = [0, 1, 0, 1, 0]
    correct = t([1, 1, 0, 0, 0, 1, 0, 0, 1, 0])
    # k = 2. A: n_neg = 1 < 2 -> R̄ = 1 -> 0.
    #   B: C(2,2)/C(3,2) = 1/3 -> R̄ = 2/3, σ = √2/3; A_pos = (1/3)/(√2/3) = 1/√2;
    #      A_neg = (1/3 - C(1,1)/C(2,1))/σ = (1/3 - 1/2)·3/√2 = -1/(2√2)
    #   C: C(3,2)/C(5,2) = 3/10 -> R̄ = 0.7, σ = √0.21; A_pos = 0.3/σ; A_neg = (0.3 - C(2,1)/C(4,1))/σ = -0.2/σ
    s_b, s_c = R2 / 3 + 1e-6, math.sqrt(0.21) + 1e-6
    want = per_position({"A": [0, 0], "B": [(1 / 3) / s_b, (-1 / 6) / s_b, (-1 / 6) / s_b],
                         "C": [-0.2 / s_c, 0.3 / s_c, -0.2 / s_c, 0.3 / s_c, -0.2 / s_c]})
    close(adv.pass_at_k(correct, MIXED_IDS, 2), want, tol=1e-12)
    # k = 3: A is smaller than k -> 0; B: n_neg = 2 < 3 -> 0;
    #   C: C(3,3)/C(5,3) = 1/10 -> R̄ = 0.9, σ = 0.3; A_pos = 0.1/0.3 = 1/3; A_neg = (0.1 - C(2,2)/C(4,2))/0.3 = -2/9
    want = per_position({"A": [0, 0], "B": [0, 0, 0], "C": [-2 / 9, 1 / 3, -2 / 9, 1 / 3, -2 / 9]})
    close(adv.pass_at_k(correct, MIXED_IDS, 3, eps=0.0), want, tol=1e-12)
    # against enumeration of the k-subsets, for every mix of a group of 6
    for k in (1, 2, 3, 4):
        for m in range(7):
            c = [1] * m + [0] * (6 - m)
            close(adv.pass_at_k(torch.tensor(c, dtype=torch.float64), 6, k), _passk_enumerated(c, k), tol=1e-9)


def test_pass_at_k_degenerate_groups_are_zero() -> None:
    # all-correct, all-wrong, n_neg < k (every 2-subset of [1,1,0] holds a correct one), singleton, size < k
    c = torch.tensor([True, True, True, False, False, False, True, True, False, True, False])
    g = ids(0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 4)
    out = adv.pass_at_k(c, g, 2)
    assert out.dtype == torch.get_default_dtype()
    assert out.abs().max().item() == 0.0
    assert adv.pass_at_k(c, g, 2, eps=0.0).abs().max().item() == 0.0
    assert adv.pass_at_k(t([1, 0]), 2, 3).tolist() == [0.0, 0.0]  # group of 2 < k = 3: 0 (reference: NaN)
    with pytest.raises(ValueError, match="\\{0, 1\\}"):
        adv.pass_at_k(t([1, -1]), 2, 1)
    with pytest.raises(ValueError, match="k >= 1"):
        adv.pass_at_k(t([1, 0]), 2, 0)


def test_pass_at_1_is_grpo_with_population_std() -> None:
    gen = torch.Generator().manual_seed(0)
    c = (torch.rand(40, generator=gen) > 0.5).double()
    g = torch.randint(0, 9, (40,), generator=gen)  # 9 prompts, sizes vary (some may be singletons)
    g[-1] = 99  # a singleton: pass@1 gives 0, GRPO's singleton="zero" too
    want = adv.group_mean_std(c, g, std_mode="population", singleton="zero")
    close(adv.pass_at_k(c, g, 1), want, tol=1e-6)
    close(adv.pass_at_k(c[:36], 4, 1), adv.group_mean_std(c[:36], 4, std_mode="population"), tol=1e-6)


# ------------------------------------------------------------------ ReMax


def test_remax_by_hand() -> None:
    outcome, baseline = t([1.0, 0.0]), t([0.5, 0.5])
    mask = t([[1, 1, 1, 0], [1, 1, 0, 0]])
    kl = t([[0.1, 0.2, 0.3, NAN], [0.5, 0.4, INF, NAN]])
    # token rewards (kl_coef 0.5): row 1 [-0.05, -0.1, 1 - 0.15]; row 2 [-0.25, -0.2]
    # return-to-go: row 1 [0.70, 0.75, 0.85]; row 2 [-0.45, -0.20]; minus the greedy baseline 0.5, no whitening
    close(adv.remax(outcome, baseline, kl, mask, 0.5), [[0.2, 0.25, 0.35, 0.0], [-0.95, -0.7, 0.0, 0.0]], tol=1e-12)
    # without KL, a sample scoring as its greedy response gets 0; otherwise R - b on every token
    close(adv.remax(outcome, t([1.0, 1.0]), torch.zeros(2, 4), mask, 0.0),
          [[0.0, 0.0, 0.0, 0.0], [-1.0, -1.0, 0.0, 0.0]])
    # a row without tokens: zeros
    close(adv.remax(t([1.0]), t([0.0]), t([[NAN, NAN]]), t([[0, 0]]), 0.5), [[0.0, 0.0]])
    with pytest.raises(ValueError, match="baseline"):
        adv.remax(outcome, t([0.5]), kl, mask, 0.5)


def test_remax_matches_verls_formula_on_clean_inputs() -> None:
    gen = torch.Generator().manual_seed(1)
    mask = (torch.arange(6)[None, :] < torch.tensor([[3], [6], [1], [4]])).double()  # left-aligned
    outcome, baseline, kl = torch.rand(4, generator=gen).double(), torch.rand(4, generator=gen).double(), \
        torch.rand(4, 6, generator=gen).double()
    token_rewards = adv._last_token_rewards(outcome, mask) - 0.1 * kl * mask
    returns = (token_rewards * mask).flip(-1).cumsum(-1).flip(-1)  # verl: returns - baseline·mask
    close(adv.remax(outcome, baseline, kl, mask, 0.1), returns - baseline[:, None] * mask, tol=1e-12)


# ------------------------------------------------------------------ GDPO


def test_gdpo_by_hand() -> None:
    # three pairs; fmt = [1,0 | 1,1 | 0,0], acc = [1,1 | 0,1 | 1,1], weights acc 2 (fmt defaults to 1)
    # per-term GRPO (unbiased std √0.5 of a mixed pair): a = 0.5/(√0.5 + 1e-6); flat pairs 0
    #   fmt -> [a, -a, 0, 0, 0, 0]; acc -> [0, 0, -a, a, 0, 0]; sum = a·[1, -1, -2, 2, 0, 0]
    # lengths 1, 2, 1, 2, 1, 1 -> 8 token values a·v, v = [1, -1, -1, -2, 2, 2, 0, 0]
    # mean a/8; Σ(v - 1/8)² = Σv² - 8/64 = 15 - 1/8 = 119/8; unbiased var a²·(119/8)/7 = a²·17/8
    # whitened (whiten_eps 0): (v - 1/8)/sqrt(17/8), whatever a is; the flat pair ends at -1/8/sqrt(17/8) != 0
    terms = {"fmt": t([1, 0, 1, 1, 0, 0]), "acc": t([1, 1, 0, 1, 1, 1])}
    mask = t([[1, 0], [1, 1], [1, 0], [1, 1], [1, 0], [1, 0]])
    s = math.sqrt(17 / 8)

    def w(v: float) -> float:
        return (v - 1 / 8) / s

    want = [[w(1), 0], [w(-1), w(-1)], [w(-2), 0], [w(2), w(2)], [w(0), 0], [w(0), 0]]
    close(adv.gdpo(terms, {"acc": 2.0}, 2, mask, whiten_eps=0.0), want, tol=1e-9)
    close(adv.gdpo(terms, {"acc": 2.0}, ids(0, 0, 1, 1, 2, 2), mask, whiten_eps=0.0), want, tol=1e-9)
    # default whiten_eps 1e-8 goes inside the rsqrt, with the real scale a
    a = 0.5 / (math.sqrt(0.5) + 1e-6)
    got = adv.gdpo(terms, {"acc": 2.0}, 2, mask)[0, 0].item()
    assert got == pytest.approx(a * (1 - 1 / 8) / math.sqrt(a * a * 17 / 8 + 1e-8), rel=1e-12)
    # one term with weight 1: GRPO then whitening
    one = adv.gdpo({"acc": terms["acc"]}, {}, 2, mask)
    close(one, adv.masked_whiten(adv.broadcast(adv.group_mean_std(terms["acc"], 2), mask), mask))


def test_gdpo_rejects_bad_terms() -> None:
    mask = torch.ones(4, 2)
    with pytest.raises(ValueError, match="at least one reward term"):
        adv.gdpo({}, {}, 2, mask)
    with pytest.raises(ValueError, match="'acc' has shape \\(3,\\)"):
        adv.gdpo({"fmt": t([1, 0, 1, 1]), "acc": t([1, 0, 1])}, {}, 2, mask)
    with pytest.raises(ValueError, match="weights name \\['acc'\\]"):
        adv.gdpo({"fmt": t([1, 0, 1, 1])}, {"acc": 2.0}, 2, mask)


# ------------------------------------------------------------------ every group estimator: invariances
# Each case maps (rewards [N], groups, per-sample extras) to per-sample outputs; extras (lengths, mask rows)
# travel with their samples. Rewards are 0/1 so pass@k and NFT apply.

Estimator = Callable[[torch.Tensor, "int | torch.Tensor", dict[str, torch.Tensor]], torch.Tensor]


def _zv(r: torch.Tensor, g: int | torch.Tensor, _: dict[str, torch.Tensor]) -> torch.Tensor:
    dense, _sizes = adv.group_index(g, r.numel())
    return zero_variance_groups(r, g)[dense].double()  # per sample: its group's flag


ESTIMATORS: dict[str, Estimator] = {
    "grpo": lambda r, g, x: adv.group_mean_std(r, g),
    "grpo_population": lambda r, g, x: adv.group_mean_std(r, g, std_mode="population"),
    "grpo_zero": lambda r, g, x: adv.group_mean_std(r, g, singleton="zero"),
    "drgrpo": lambda r, g, x: adv.group_mean(r, g),
    "drgrpo_zero": lambda r, g, x: adv.group_mean(r, g, singleton="zero"),
    "lite": lambda r, g, x: adv.group_mean_batch_std(r, g),
    "rloo": lambda r, g, x: adv.leave_one_out(r, g),
    "reinforce_pp_baseline": lambda r, g, x: adv.reinforce_pp_baseline(r, g, x["mask"]),
    "nft_pm1": lambda r, g, x: adv.nft_rates(2 * r - 1, g)[0],
    "nft_binary": lambda r, g, x: adv.nft_rates(r, g, reward_kind="binary", clamp=None)[0],
    "zero_variance": _zv,
    "opo": lambda r, g, x: adv.opo(r, g, x["lengths"]),
    "gpg": lambda r, g, x: adv.gpg(r, g),
    "pass_at_2": lambda r, g, x: adv.pass_at_k(r, g, 2),
    "gdpo": lambda r, g, x: adv.gdpo({"a": r, "b": x["lengths"] * r}, {"b": 0.5}, g, x["mask"]),
}
BATCH_COUPLED = {"lite", "reinforce_pp_baseline", "gpg", "gdpo"}  # batch std / α / whitening span groups


def _batch(n: int, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    r = (torch.rand(n, generator=gen) > 0.5).double()
    lengths = torch.randint(1, 6, (n,), generator=gen).double()
    mask = (torch.arange(6)[None, :] < lengths[:, None]).double()
    return r, {"lengths": lengths, "mask": mask}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@pytest.mark.parametrize("size", [1, 2, 4])
def test_int_groups_equal_contiguous_ids(name: str, size: int) -> None:
    r, extra = _batch(8 * size, seed=size)
    r[:size] = 1.0  # one flat group at least
    contiguous = torch.arange(8 * size) // size
    close(ESTIMATORS[name](r, contiguous, extra), ESTIMATORS[name](r, size, extra), tol=1e-6)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_shuffling_samples_with_their_ids_permutes_the_output(name: str) -> None:
    g = torch.tensor([0] * 2 + [1] * 3 + [2] * 5 + [3] + [4] * 4) * 7 + 3  # sizes 2, 3, 5, 1, 4; ids 3, 10, ...
    r, extra = _batch(g.numel(), seed=7)
    r[10] = 1.0
    perm = torch.randperm(g.numel(), generator=torch.Generator().manual_seed(3))
    shuffled = ESTIMATORS[name](r[perm], g[perm], {k: v[perm] for k, v in extra.items()})
    close(shuffled, ESTIMATORS[name](r, g, extra)[perm], tol=1e-9)


@pytest.mark.parametrize("name", sorted(set(ESTIMATORS) - BATCH_COUPLED))
def test_each_group_equals_that_group_alone(name: str) -> None:
    correct = t([1, 1, 0, 0, 0, 1, 0, 1, 1, 0])  # A = [1, 0], B = [1, 0, 1], C = [0, 1, 0, 1, 0]
    _, extra = _batch(10, seed=11)
    whole = ESTIMATORS[name](correct, MIXED_IDS, extra)
    for gid in (5, 9, 2):
        sel = MIXED_IDS == gid
        alone = ESTIMATORS[name](correct[sel], int(sel.sum()), {k: v[sel] for k, v in extra.items()})
        close(whole[sel], alone, tol=1e-12)


def test_batch_coupled_estimators_are_group_local_before_the_batch_step() -> None:
    r = MIXED
    # Lite PPO times the batch std is Dr. GRPO with its own (ROLL) singleton rule; GPG over α is per group
    std_b = r.std().item()
    close(adv.group_mean_batch_std(r, MIXED_IDS, eps=0.0) * std_b, adv.group_mean(r, MIXED_IDS), tol=1e-12)
    close(adv.gpg(r, MIXED_IDS), adv.group_mean(r, MIXED_IDS, singleton="zero"), tol=1e-12)  # α = 1 here
    mask = torch.ones(10, 3)
    close(adv.reinforce_pp_baseline(r, MIXED_IDS, mask),
          adv.masked_whiten(adv.broadcast(adv.group_mean(r, MIXED_IDS), mask), mask), tol=1e-12)


# ------------------------------------------------------------------ discounted returns vs verl's loop


def _verl_reinforce_pp_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """verl's REINFORCE++ return loop, raw (before its whitening masks it)."""
    returns, running = torch.zeros_like(rewards), torch.zeros_like(rewards[:, 0])
    for step in reversed(range(rewards.shape[1])):
        running = rewards[:, step] + gamma * running
        returns[:, step] = running
        running = running * mask[:, step]
    return returns


@pytest.mark.parametrize("gamma", [0.5, 1.0])
def test_discounted_returns_agree_with_verl_on_contiguous_masks(gamma: float) -> None:
    # finite garbage on the padding: verl zeroes the running return at each padded position
    rewards = t([[1.0, 2.0, 3.0, 50.0], [0.5, 40.0, 30.0, 20.0], [7.0, -1.0, 2.0, 4.0]])
    mask = t([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
    ours = adv.discounted_returns(rewards, mask, gamma)
    close(ours, _verl_reinforce_pp_returns(rewards, mask, gamma) * mask, tol=1e-12)
    # an inf on the padding: inf·0 = NaN in verl's loop, which then reaches every valid position
    rewards[0, 3] = INF
    assert torch.isnan(_verl_reinforce_pp_returns(rewards, mask, gamma)[0, :3]).all()
    assert torch.isfinite(adv.discounted_returns(rewards, mask, gamma)).all()


def test_discounted_returns_differ_from_verl_across_a_hole() -> None:
    rewards, mask = t([[1.0, 2.0, 100.0, 3.0, 4.0]]), t([[1, 1, 0, 1, 1]])
    # rlvr skips the hole (no reward, no discount step), gamma 0.5:
    #   G4 = 4, G3 = 3 + 0.5·4 = 5, G1 = 2 + 0.5·5 = 4.5, G0 = 1 + 0.5·4.5 = 3.25
    close(adv.discounted_returns(rewards, mask, 0.5), [[3.25, 4.5, 0.0, 5.0, 4.0]])
    # verl: G4 = 4, G3 = 5; at the hole G2 = 100 + 0.5·5 = 102.5, *then* the running return is zeroed,
    # so G1 = 2 and G0 = 1 + 0.5·2 = 2: positions before the hole see none of the rewards from it onwards
    close(_verl_reinforce_pp_returns(rewards, mask, 0.5), [[2.0, 2.0, 102.5, 5.0, 4.0]])
    # gamma 1: rlvr 10, 9, -, 7, 4; verl 3, 2, (107), 7, 4 — the last token's outcome (4) never reaches t < 2
    close(adv.discounted_returns(rewards, mask, 1.0), [[10.0, 9.0, 0.0, 7.0, 4.0]])
    close(_verl_reinforce_pp_returns(rewards, mask, 1.0) * mask, [[3.0, 2.0, 0.0, 7.0, 4.0]])
