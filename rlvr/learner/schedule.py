"""Learning-rate schedules: linear warm-up, then constant, linear or cosine decay.

A recipe that reproduces a paper must reproduce its schedule, and the unit it counts in: verl and
OpenRLHF step their scheduler once per *training step* (one rollout batch), however many optimizer
updates that step takes, so "10 warm-up steps" with 16 mini-batches are 160 optimizer updates there.
``warmup_unit`` says which unit a recipe's numbers are in; the decay runs over the run's whole length
in the same unit.

The factor of update ``u`` (0-based count of updates taken before it), in units of ``t`` (``u`` itself,
or the training step ``u // updates_per_step``) out of ``T`` (total updates, or ``run.steps``):

* warm-up, ``t < W``: ``(t + 1) / W``. The first update already moves (verl's ``LambdaLR`` gives the
  first step a rate of 0 and reaches the full rate one step later than this);
* ``verl_steps``: verl's own scheduler, stepped once per training step *after* it: warm-up ``t / W``,
  so its first step runs at a rate of 0; with the constant schedule the factor is ``min(1, t / max(1, W))``,
  0 at the first step even without warm-up (SimpleRL-Zoo's and DAPO's runs have it);
* then, with ``p = (t - W) / max(1, T - W)`` clipped to [0, 1] and floor ``m = min_lr_ratio``:
  constant ``1``; linear ``1 - (1 - m) p``; cosine ``m + (1 - m) (1 + cos(pi p)) / 2`` (Loshchilov &
  Hutter, arXiv 1608.03983; the half-period form of HF ``get_cosine_schedule_with_warmup``, with the
  floor of verl's ``min_lr_ratio``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Schedule"]


@dataclass(frozen=True)
class Schedule:
    """One optimizer's schedule; ``factor(u)`` multiplies the peak learning rate at update ``u``."""

    warmup: int
    unit: Literal["updates", "steps", "verl_steps"]
    decay: Literal["constant", "linear", "cosine"]
    min_ratio: float
    total_steps: int
    updates_per_step: int

    def __post_init__(self) -> None:
        if self.unit not in ("updates", "steps", "verl_steps"):
            raise ValueError(f"warm-up unit must be 'updates', 'steps' or 'verl_steps', got {self.unit!r}")
        if self.decay not in ("constant", "linear", "cosine"):
            raise ValueError(f"lr decay must be 'constant', 'linear' or 'cosine', got {self.decay!r}")
        if self.warmup < 0 or self.total_steps < 1 or self.updates_per_step < 1 or not 0 <= self.min_ratio <= 1:
            raise ValueError(f"invalid schedule {self}")

    @property
    def is_constant(self) -> bool:
        return self.warmup == 0 and self.decay == "constant" and self.unit != "verl_steps"

    def factor(self, done: int) -> float:
        """The multiplier of the update taken after ``done`` updates."""
        if self.unit == "updates":
            t, total = done, self.total_steps * self.updates_per_step
        else:
            t, total = done // self.updates_per_step, self.total_steps
        if self.unit == "verl_steps":
            if self.decay == "constant":
                return min(1.0, t / max(1, self.warmup))
            if t < self.warmup:
                return t / self.warmup
        elif t < self.warmup:
            return (t + 1) / self.warmup
        if self.decay == "constant":
            return 1.0
        progress = min(1.0, max(0.0, (t - self.warmup) / max(1, total - self.warmup)))
        if self.decay == "linear":
            return 1.0 - (1.0 - self.min_ratio) * progress
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def builder(self) -> Callable[[Any], Any] | None:
        """For ``deepspeed.initialize(lr_scheduler=...)``: a ``LambdaLR`` stepped once per optimizer
        update (DeepSpeed steps it in ``engine.step()``); None when the rate is constant."""
        if self.is_constant:
            return None

        def build(optimizer: Any) -> Any:
            from torch.optim.lr_scheduler import LambdaLR

            return LambdaLR(optimizer, lambda done: self.factor(done))  # a plain function: not pickled into checkpoints

        return build
