"""KL to a frozen reference policy: per-token estimators and the coefficient controllers.

Estimators (Schulman, "Approximating KL divergence", 2020, http://joschu.net/blog/kl-approx.html),
with ``δ = log π_θ(o_t) - log π_ref(o_t)`` on tokens sampled from (approximately) ``π_θ``:

* ``k1 = δ``: unbiased value of KL(π_θ‖π_ref), high variance, can be negative. Its gradient as a loss
  term is *not* the KL gradient (its expectation is 0); it is the estimator for KL in the *reward*.
* ``k2 = δ²/2``: biased value (low variance), but its gradient ``δ ∇log π_θ`` is the gradient of the
  KL (the on-policy score-function estimator); verl ``mse``/``k2``, OpenRLHF ``k2``.
* ``k3 = exp(-δ) - 1 + δ`` (``π_ref/π_θ - log(π_ref/π_θ) - 1 ≥ 0``): unbiased, low-variance value;
  verl ``low_var_kl``, GRPO's KL term (arXiv 2402.03300 eq. 4). Computed exactly as verl
  ``kl_penalty_forward``: ``x = clamp(log π_ref - log π_θ, -20, 20)``, ``k3 = clamp(exp(x) - x - 1, -10, 10)``
  (so ``k3 ≤ 10``; both clamps also zero the gradient where they bind).
* ``abs = |δ|``: verl ``abs``; a biased value whose gradient ``sgn(δ) ∇log π_θ`` pushes every token towards
  the reference with the same force, however close it already is.
* ``k3+``, ``k1+``, ``abs+``: the base estimator's value with ``k2``'s gradient, straight-through:
  ``k2 - sg[k2] + sg[k]`` (verl: any estimator name ending in ``+``; ALGORITHMS.md §15.10). Under sampling from
  ``π_θ``, ``E[δ ∇log π_θ] = ∇KL(π_θ‖π_ref)``, while ``E[∇k1] = 0`` and ``E[∇k3] = ∇KL(π_ref‖π_θ)``: the ``+`` forms
  log the chosen estimator and follow the gradient of the KL the loss means to penalise. Only a KL *in the
  loss* sees the difference; in the reward the value is all that counts.
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["KL_ESTIMATORS", "AdaptiveKLController", "FixedKLController", "KLEstimator", "kl_penalty"]

KLEstimator = Literal["k1", "k2", "k3", "k3+", "abs", "k1+", "abs+"]
KL_ESTIMATORS: tuple[str, ...] = ("k1", "k2", "k3", "k3+", "abs", "k1+", "abs+")


def _k3(delta: torch.Tensor) -> torch.Tensor:
    x = torch.clamp(-delta, min=-20.0, max=20.0)  # log π_ref - log π_θ (verl: ref_logprob - logprob)
    return torch.clamp(torch.exp(x) - x - 1, min=-10.0, max=10.0)


def kl_penalty(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: KLEstimator, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-token KL estimate ``[B, T]`` of the current policy against the reference (module docstring).

    ``mask`` (optional, read as ``mask > 0``): masked positions give exactly 0 with zero gradient even
    when they hold inf/NaN garbage. Without it every position is computed (garbage in, garbage out).
    """
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator {estimator!r}; valid: {', '.join(KL_ESTIMATORS)}")
    delta = logprobs - ref_logprobs  # [B, T]
    if mask is not None:
        delta = torch.where(mask > 0, delta, torch.zeros((), dtype=delta.dtype, device=delta.device))
    base = estimator.removesuffix("+")
    if base == "k1":
        value = delta
    elif base == "abs":
        value = delta.abs()
    elif base == "k2":
        value = 0.5 * delta.square()
    else:
        value = _k3(delta)
    if not estimator.endswith("+"):
        return value
    k2 = 0.5 * delta.square()  # [B, T]
    return k2 - k2.detach() + value.detach()  # the base estimator's value, k2's gradient


class FixedKLController:
    """A constant KL coefficient (``value``); `update` does nothing."""

    def __init__(self, kl_coef: float) -> None:
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        del current_kl, n_steps


class AdaptiveKLController:
    """Adaptive KL coefficient (Ziegler et al., "Fine-Tuning Language Models from Human Preferences",
    arXiv 1909.08593 §2.2), as verl / TRL / ROLL implement it:

        e = clip(current_kl / target_kl - 1, -0.2, 0.2);   value *= 1 + e · n_steps / horizon

    ``n_steps`` is the number of samples the KL was measured on (verl passes the batch size);
    ``horizon`` is in the same unit.
    """

    def __init__(self, init_kl_coef: float, target_kl: float, horizon: float) -> None:
        if target_kl <= 0 or horizon <= 0:
            raise ValueError(f"target_kl and horizon must be positive, got {target_kl}, {horizon}")
        self.value = float(init_kl_coef)
        self.target = float(target_kl)
        self.horizon = float(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
