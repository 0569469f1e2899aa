"""The two loss families, assembled from `rlvr.algorithms.parts` according to an `AlgorithmConfig`.

`PolicyGradientLoss` covers GRPO, Dr. GRPO, DAPO, GSPO, Lite PPO, REINFORCE++(-baseline) and RLOO:
advantage estimator x ratio level x clipping x aggregation x KL placement/estimator x entropy bonus
x sampler/learner importance-sampling correction (truncated or masked, token or sequence level).
`NFTLoss` is NFT's likelihood loss on the implicit negative policy.
"""

from __future__ import annotations

import torch

from rlvr.algorithms.base import AdvantageInput, AdvantageOutput, AggNorm, LossInput
from rlvr.algorithms.parts import advantages as adv
from rlvr.algorithms.parts.aggregation import aggregate
from rlvr.algorithms.parts.clip import ppo_clip
from rlvr.algorithms.parts.correction import BANDED_CORRECTIONS, is_weights
from rlvr.algorithms.parts.kl import kl_penalty
from rlvr.algorithms.parts.nft import nft_loss
from rlvr.algorithms.parts.ratio import log_ratio
from rlvr.config.schema import AlgorithmConfig


def outcome_at_last_token(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sequence rewards ``[N]`` placed on each response's last token (response space ``[N, T]``)."""
    out = torch.zeros_like(mask)
    last = (mask.sum(-1).long() - 1).clamp(min=0)  # [N]
    has = mask.sum(-1) > 0
    out[has, last[has]] = rewards[has].to(out.dtype)
    return out


def compute_advantages(cfg: AlgorithmConfig, inp: AdvantageInput) -> AdvantageOutput:
    """Dispatch on ``cfg.advantage``; sequence-level estimators are broadcast to the response tokens."""
    r, g, mask = inp.rewards.float(), inp.group_size, inp.mask
    name = cfg.advantage
    if name == "grpo":
        return AdvantageOutput(adv.broadcast(adv.group_mean_std(r, g, std_mode=cfg.std_mode, eps=cfg.eps), mask))
    if name == "drgrpo":
        return AdvantageOutput(adv.broadcast(adv.group_mean(r, g), mask))
    if name == "lite":
        return AdvantageOutput(adv.broadcast(adv.group_mean_batch_std(r, g, eps=cfg.eps), mask))
    if name == "rloo":
        return AdvantageOutput(adv.broadcast(adv.leave_one_out(r, g), mask))
    if name == "reinforce_pp":
        kl = inp.kl if inp.kl is not None else torch.zeros_like(mask)
        return AdvantageOutput(adv.reinforce_pp(r, kl, mask, kl_coef=inp.kl_coef, gamma=cfg.gamma))
    if name == "reinforce_pp_baseline":
        return AdvantageOutput(adv.reinforce_pp_baseline(r, g, mask))
    if name == "gae":
        if inp.values is None:
            raise ValueError("the gae advantage needs critic values")
        token_rewards = outcome_at_last_token(r, mask)  # [N, T]
        if inp.kl is not None:
            token_rewards = token_rewards - inp.kl_coef * inp.kl
        advantages, returns = adv.gae(token_rewards, inp.values, mask, gamma=cfg.gamma, lam=cfg.lam)
        return AdvantageOutput(adv.masked_whiten(advantages, mask), returns=returns)
    if name == "nft":
        # Correctness comes from the verifiers, not from the (possibly shaped) reward's sign.
        c = inp.correct.float() if inp.correct is not None else (r > 0).float()
        r_hat, correct = adv.nft_rates(c, g, reward_kind="binary")
        return AdvantageOutput(torch.zeros_like(mask), row_values={"r_hat": r_hat, "correct": correct})
    raise ValueError(f"unknown advantage estimator {name!r}")


class _Base:
    def __init__(self, cfg: AlgorithmConfig, max_new_tokens: int | None = None) -> None:
        self.cfg = cfg
        self.kl_coef = cfg.kl_coef  # the driver's KL controller sets it each step (adaptive KL)
        self.needs_reference = cfg.kl_placement != "none"
        self.needs_old_logprobs = cfg.kl_placement == "reward" or cfg.mini_batches * cfg.epochs > 1
        self.needs_critic = cfg.advantage == "gae"
        constant = cfg.loss_agg_constant
        if constant is None and cfg.loss_agg == "seq-mean-token-sum-norm":
            constant = float(max_new_tokens) if max_new_tokens else None
        self.agg_constant = constant

    def advantages(self, inp: AdvantageInput) -> AdvantageOutput:
        return compute_advantages(self.cfg, inp)

    def _common_terms(self, batch: LossInput, per_token: torch.Tensor, sums: dict[str, torch.Tensor]) -> torch.Tensor:
        c, mask = self.cfg, batch.mask
        if batch.ref_logprobs is not None:
            estimator = c.kl_estimator if c.kl_placement == "loss" else "k3"
            kl = kl_penalty(batch.logprobs, batch.ref_logprobs, estimator, mask=mask)
            if c.kl_placement == "loss":
                per_token = per_token + self.kl_coef * kl
            sums["actor/kl"] = torch.where(mask > 0, kl, 0.0).sum().detach()
        if batch.entropy is not None and c.entropy_coef > 0:
            per_token = per_token - c.entropy_coef * batch.entropy
        return per_token


class PolicyGradientLoss(_Base):
    """PPO-clip on the chosen ratio level, plus KL-in-loss, entropy bonus and the sampler/learner
    importance-sampling correction (``tis_cap``, ``is_correction``, ``is_low``: `parts.correction`)."""

    def loss(self, batch: LossInput, norm: AggNorm) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c, mask = self.cfg, batch.mask
        ratio = torch.exp(log_ratio(batch.logprobs, batch.old_logprobs, mask, level=c.ratio_level))  # [B, T]
        clip = ppo_clip(ratio, batch.advantages, c.clip_low, c.clip_high, dual_clip=c.dual_clip, mask=mask)
        per_token = clip.loss  # [B, T]
        sums: dict[str, torch.Tensor] = {}
        if c.tis_cap is not None and batch.sampler_logprobs is not None:
            weights, hit = is_weights(c.is_correction, batch.old_logprobs, batch.sampler_logprobs, mask,
                                      c.tis_cap, c.is_low)  # [B, T] detached, [B, T] bool
            per_token = per_token * weights
            # truncated at the cap (token_tis, seq_tis) or zeroed outside the band (mis, icepop)
            hit_name = "actor/is_masked_frac" if c.is_correction in BANDED_CORRECTIONS else "actor/tis_clipfrac"
            sums[hit_name] = hit.float().sum()
            sums["actor/is_weight_mean"] = weights.sum()
        sums |= {
            "actor/pg_loss": torch.where(mask > 0, clip.loss, 0.0).sum().detach(),
            # verl's pg_clipfrac = low | high; verl's pg_clipfrac_lower is our pg_clipfrac_dual
            "actor/pg_clipfrac": ((clip.clipped_low | clip.clipped_high).float() * mask).sum(),
            "actor/pg_clipfrac_low": (clip.clipped_low.float() * mask).sum(),  # A < 0, ratio < 1 - clip_low
            "actor/pg_clipfrac_high": (clip.clipped_high.float() * mask).sum(),  # A > 0, ratio > 1 + clip_high
            "actor/pg_clipfrac_dual": (clip.dual_clipped.float() * mask).sum(),  # A < 0, ratio > dual_clip
            "actor/ratio_mean": torch.where(mask > 0, ratio, 0.0).sum().detach(),
            # k1 of pi_old against pi per token (verl's ppo_kl): 0 on the first pass over fresh samples,
            # how far the policy has moved from the sampling one in later mini-batches and epochs
            "actor/ppo_kl": torch.where(mask > 0, batch.old_logprobs - batch.logprobs, 0.0).sum().detach(),
        }
        per_token = self._common_terms(batch, per_token, sums)
        return aggregate(per_token, mask, c.loss_agg, norm), sums


class NFTLoss(_Base):
    """NFT (arXiv 2505.18116) exactly as NVlabs/NFT computes it; see `parts.nft`."""

    def loss(self, batch: LossInput, norm: AggNorm) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c, mask = self.cfg, batch.mask
        per_token = nft_loss(
            batch.logprobs, batch.old_logprobs, mask, batch.row_values["r_hat"], batch.row_values["correct"],
            neg_weight=c.nft_neg_weight, prompt_weight=c.nft_prompt_weight, clamp_negative=c.nft_clamp_negative,
            clamp_positive=c.nft_clamp_positive, ratio_type=c.nft_ratio,
        )
        sums = {"actor/nft_loss": torch.where(mask > 0, per_token, 0.0).sum().detach()}
        per_token = self._common_terms(batch, per_token, sums)
        return aggregate(per_token, mask, c.loss_agg, norm), sums
