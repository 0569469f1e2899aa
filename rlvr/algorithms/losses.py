"""The two loss families, assembled from `rlvr.algorithms.parts` according to an `AlgorithmConfig`.

`PolicyGradientLoss` covers GRPO, Dr. GRPO, DAPO, GSPO, Lite PPO, REINFORCE++(-baseline), RLOO, CISPO, SAPO,
GMPO, GPG, DPPO, Clip-Cov / KL-Cov, OPO, pass@k, ReMax and GDPO: advantage estimator x per-token policy loss
(PPO-clip at a ratio level, or one of `parts.policy`) x aggregation x KL placement/estimator x entropy bonus
x sampler/learner importance-sampling correction (truncated or masked, token or sequence level). Every log
importance ratio is clamped before ``exp`` (``log_ratio_clamp``). `NFTLoss` is NFT's likelihood loss on the
implicit negative policy.
"""

from __future__ import annotations

import torch

from rlvr.algorithms.base import AdvantageInput, AdvantageOutput, AggNorm, LossInput
from rlvr.algorithms.parts import advantages as adv
from rlvr.algorithms.parts import policy
from rlvr.algorithms.parts.aggregation import aggregate
from rlvr.algorithms.parts.clip import ppo_clip
from rlvr.algorithms.parts.correction import BANDED_CORRECTIONS, is_weights
from rlvr.algorithms.parts.kl import kl_penalty
from rlvr.algorithms.parts.nft import nft_loss
from rlvr.algorithms.parts.ratio import log_ratio
from rlvr.config.schema import AlgorithmConfig

COV_LOSSES = ("clip_cov", "kl_cov")


def outcome_at_last_token(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sequence rewards ``[N]`` placed on each response's last token (response space ``[N, T]``)."""
    out = torch.zeros_like(mask)
    last = (mask.sum(-1).long() - 1).clamp(min=0)  # [N]
    has = mask.sum(-1) > 0
    out[has, last[has]] = rewards[has].to(out.dtype)
    return out


def compute_advantages(cfg: AlgorithmConfig, inp: AdvantageInput) -> AdvantageOutput:
    """Dispatch on ``cfg.advantage``; sequence-level estimators are broadcast to the response tokens. Group
    estimators group by ``inp.groups`` (prompt ids when the groups differ in size)."""
    r, g, mask = inp.rewards.float(), inp.groups, inp.mask
    name = cfg.advantage
    if name == "grpo":
        return AdvantageOutput(adv.broadcast(adv.group_mean_std(r, g, std_mode=cfg.std_mode, eps=cfg.eps), mask))
    if name == "drgrpo":
        return AdvantageOutput(adv.broadcast(adv.group_mean(r, g), mask))
    if name == "lite":
        return AdvantageOutput(adv.broadcast(adv.group_mean_batch_std(r, g, eps=cfg.eps), mask))
    if name == "rloo":
        return AdvantageOutput(adv.broadcast(adv.leave_one_out(r, g), mask))
    if name == "opo":
        return AdvantageOutput(adv.broadcast(adv.opo(r, g, (mask > 0).sum(-1)), mask))
    if name == "gpg":
        return AdvantageOutput(adv.broadcast(adv.gpg(r, g), mask))
    if name == "passk":
        c = inp.correct.float() if inp.correct is not None else (r > 0).float()
        return AdvantageOutput(adv.broadcast(adv.pass_at_k(c, g, cfg.pass_k), mask))
    if name == "reinforce_pp":
        kl = inp.kl if inp.kl is not None else torch.zeros_like(mask)
        return AdvantageOutput(adv.reinforce_pp(r, kl, mask, kl_coef=inp.kl_coef, gamma=cfg.gamma))
    if name == "reinforce_pp_baseline":
        return AdvantageOutput(adv.reinforce_pp_baseline(r, g, mask))
    if name == "remax":
        if inp.baseline is None:
            raise ValueError("the remax advantage needs the greedy baseline reward of every sample's prompt")
        kl = inp.kl if inp.kl is not None else torch.zeros_like(mask)
        return AdvantageOutput(adv.remax(r, inp.baseline.float(), kl, mask, kl_coef=inp.kl_coef))
    if name == "gdpo":
        return AdvantageOutput(adv.gdpo(_gdpo_terms(cfg, inp), cfg.gdpo_weights, g, mask, eps=cfg.eps))
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


def _gdpo_terms(cfg: AlgorithmConfig, inp: AdvantageInput) -> dict[str, torch.Tensor]:
    """The reward terms GDPO normalises one by one: ``cfg.gdpo_terms``, or every term the verifiers reported."""
    if not inp.reward_terms:
        raise ValueError("the gdpo advantage normalises each term of a composed reward, but the verifiers reported "
                         "no terms: use reward.verifier: compose (its verifier_kwargs.terms), or another advantage")
    names = cfg.gdpo_terms or sorted(inp.reward_terms)
    missing = [n for n in names if n not in inp.reward_terms]
    if missing:
        raise ValueError(f"algorithm.gdpo_terms names {missing}, but the verifiers reported only "
                         f"{sorted(inp.reward_terms)}")
    return {n: inp.reward_terms[n].float() for n in names}


class _Base:
    def __init__(self, cfg: AlgorithmConfig, max_new_tokens: int | None = None) -> None:
        self.cfg = cfg
        self.kl_coef = cfg.kl_coef  # the driver's KL controller sets it each step (adaptive KL)
        self.needs_reference = cfg.kl_placement != "none"
        # Clip-/KL-Cov select tokens by the covariance of advantage and log-prob over the whole batch (driver)
        self.needs_old_logprobs = (cfg.kl_placement == "reward" or cfg.mini_batches * cfg.epochs > 1
                                   or cfg.policy_loss in COV_LOSSES)
        self.needs_critic = cfg.advantage == "gae"
        self.needs_greedy = cfg.advantage == "remax"
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
    """A per-token policy loss (``policy_loss``: PPO-clip on the chosen ratio level, or one of `parts.policy`),
    plus KL-in-loss, entropy bonus and the sampler/learner importance-sampling correction (``tis_cap``,
    ``is_correction``, ``is_low``: `parts.correction`).

    The log-ratio is clamped to ``±log_ratio_clamp`` before any ``exp`` (ALGORITHMS.md §15.12): unclamped, a
    token with log-ratio 100 overflows ``exp`` in float32 and its ``inf`` turns the gradient NaN even where the
    clip would have zeroed it, and a log-ratio of 25 with a negative advantage and no dual clip gives a
    per-token loss of ``|A|·e^25 ≈ 7.2e10·|A|``. Clamped tokens get no gradient through the ratio;
    ``actor/log_ratio_clampfrac`` counts them.
    """

    def advantages(self, inp: AdvantageInput) -> AdvantageOutput:
        out = compute_advantages(self.cfg, inp)
        c = self.cfg
        if c.policy_loss in COV_LOSSES:
            if inp.logprobs is None:
                raise ValueError(f"policy_loss={c.policy_loss} selects tokens by the covariance of advantage and "
                                 "log-prob: the advantage input needs the rollouts' log-probs")
            generator = torch.Generator().manual_seed(inp.seed)
            selected = policy.covariance_selection(
                "clip" if c.policy_loss == "clip_cov" else "kl", out.advantages, inp.logprobs, inp.mask,
                c.cov_fraction, bounds=c.clip_cov_bounds, generator=generator)  # [N, T] bool
            out.token_values["cov_selected"] = selected.to(out.advantages.dtype)
            out.metrics["advantage/cov_selected_tokens"] = float(selected.sum())
        return out

    def _policy_loss(self, batch: LossInput, delta: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-token policy loss ``[B, T]`` and its boolean flags ``[B, T]`` (logged as token fractions)."""
        c, mask, a, lp = self.cfg, batch.mask, batch.advantages, batch.logprobs
        name = c.policy_loss
        if name == "ppo_clip":
            clip = ppo_clip(torch.exp(delta), a, c.clip_low, c.clip_high, dual_clip=c.dual_clip, mask=mask)
            # verl's pg_clipfrac = low | high; verl's pg_clipfrac_lower is our pg_clipfrac_dual
            return clip.loss, {
                "pg_clipfrac": clip.clipped_low | clip.clipped_high,
                "pg_clipfrac_low": clip.clipped_low,  # A < 0, ratio < 1 - clip_low
                "pg_clipfrac_high": clip.clipped_high,  # A > 0, ratio > 1 + clip_high
                "pg_clipfrac_dual": clip.dual_clipped,  # A < 0, ratio > dual_clip
            }
        if name == "cispo":
            out = policy.cispo(delta, lp, a, mask, c.clip_low, c.clip_high)
        elif name == "sapo":
            out = policy.sapo(delta, a, mask, c.sapo_tau_pos, c.sapo_tau_neg)
        elif name == "gmpo":
            out = policy.gmpo(delta, a, mask, c.clip_low, c.clip_high)
        elif name == "gpg":
            out = policy.gpg(lp, a, mask)
        elif name in ("dppo_tv", "dppo_kl"):
            out = policy.dppo(name.removeprefix("dppo_"), lp, batch.old_logprobs, delta, a, mask,  # type: ignore[arg-type]
                              c.clip_low, c.clip_high, c.ratio_cap)
        elif name == "reinforce":
            out = policy.reinforce(delta, lp, a, mask, c.ratio_cap)
        elif name in COV_LOSSES:
            selected = batch.token_values.get("cov_selected")
            if selected is None:
                raise ValueError(f"policy_loss={name}: the batch carries no token selection (token_values"
                                 "['cov_selected']), which this module's advantages() computes on the driver")
            if name == "clip_cov":
                out = policy.clip_cov(delta, a, mask, selected > 0, c.clip_low, c.clip_high, c.dual_clip)
            else:
                out = policy.kl_cov(delta, a, mask, selected > 0, c.kl_cov_coef)
        else:
            raise ValueError(f"unknown policy loss {name!r}")
        return out.loss, out.flags

    def loss(self, batch: LossInput, norm: AggNorm) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c, mask = self.cfg, batch.mask
        bound = c.log_ratio_clamp
        valid = mask > 0
        unclamped = log_ratio(batch.logprobs, batch.old_logprobs, mask, level=c.ratio_level)  # [B, T], 0 if masked
        delta = unclamped if bound is None else unclamped.clamp(-bound, bound)  # [B, T]
        clamped = valid & (unclamped.detach().abs() > bound) if bound is not None else torch.zeros_like(valid)
        per_token, flags = self._policy_loss(batch, delta)
        sums: dict[str, torch.Tensor] = {"actor/pg_loss": torch.where(valid, per_token, 0.0).sum().detach()}
        if c.tis_cap is not None and batch.sampler_logprobs is not None:
            weights, hit = is_weights(c.is_correction, batch.old_logprobs, batch.sampler_logprobs, mask,
                                      c.tis_cap, c.is_low)  # [B, T] detached, [B, T] bool
            per_token = per_token * weights
            # truncated at the cap (token_tis, seq_tis) or zeroed outside the band (mis, icepop)
            hit_name = "actor/is_masked_frac" if c.is_correction in BANDED_CORRECTIONS else "actor/tis_clipfrac"
            sums[hit_name] = hit.float().sum()
            sums["actor/is_weight_mean"] = weights.sum()
        sums |= {f"actor/{name}": (flag & valid).float().sum() for name, flag in flags.items()}
        sums |= {
            "actor/ratio_mean": torch.where(valid, torch.exp(delta), 0.0).sum().detach(),
            "actor/log_ratio_clampfrac": clamped.float().sum(),
            # k1 of pi_old against pi per token (verl's ppo_kl): 0 on the first pass over fresh samples,
            # how far the policy has moved from the sampling one in later mini-batches and epochs
            "actor/ppo_kl": torch.where(valid, batch.old_logprobs - batch.logprobs, 0.0).sum().detach(),
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
