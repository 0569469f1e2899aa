"""Every metric rlvr logs, with what it means: the one place they are documented.

``docs/metrics.md`` is generated from `METRICS` (``python -m rlvr.metrics > docs/metrics.md``); a test
checks the file is current, and the integration tests check that every key a real run logs matches an
entry here, so the reference cannot drift from the code. ``<name>`` in a key stands for one path
segment (a reward term, an eval set, a timed phase, a k).
"""

from __future__ import annotations

import re

# (key pattern, when it is logged, meaning). Train rows are one per step; eval rows are separate.
METRICS: list[tuple[str, str, str]] = [
    # reward and correctness
    ("reward/mean", "every step", "mean verifier score of the step's samples (before shaping)"),
    ("reward/std", "every step", "standard deviation of the verifier scores"),
    ("reward/shaped_mean", "every step", "mean reward after the algorithm's shaping (overlong punishment, "
     "non-EOS penalty), what the advantages are computed from"),
    ("reward/terms/<name>", "composed rewards", "mean score of one term of a `compose` verifier"),
    ("accuracy", "every step", "fraction of samples the verifier judged correct"),
    ("rollout/solve_all", "every step", "fraction of prompts whose samples were all correct"),
    ("rollout/solve_none", "every step", "fraction of prompts whose samples were all wrong"),
    # responses
    ("response_length/mean", "every step", "mean response length in tokens"),
    ("response_length/max", "every step", "longest response in tokens"),
    ("response_length/clip_ratio", "every step", "fraction of responses cut at rollout.max_new_tokens"),
    ("rollout/generated_tokens", "every step", "response tokens generated, all dynamic-sampling rounds included"),
    ("rollout/extra_samples", "every step", "responses of the step's batch generated in the second round of "
     "rollout.extra_samples (prompts whose first-round pass rate was in the band; 0 without it)"),
    ("rollout/group_size_mean", "every step", "mean responses per prompt in the step's batch (rollout.n, more with "
     "rollout.extra_samples)"),
    ("rollout/group_size_max", "every step", "largest group of the step's batch"),
    ("rollout/greedy_reward_mean", "greedy baseline (ReMax)", "mean verifier score of the one greedy response per "
     "prompt (temperature 0), the baseline ReMax subtracts; not trained on"),
    ("rollout/greedy_accuracy", "greedy baseline (ReMax)", "fraction of the greedy responses judged correct"),
    ("rollout/greedy_generated_tokens", "greedy baseline (ReMax)", "response tokens of the greedy responses, "
     "all dynamic-sampling rounds included (generated in the same engine calls as the samples, so their time is "
     "part of time/generate_s)"),
    ("rollout/logprob_abs_diff", "every step", "mean |sampler log-prob - learner log-prob| per response token: "
     "the rollout/learner mismatch (0 up to numerics when the weight sync is exact)"),
    # dynamic sampling
    ("dynamic_sampling/rounds", "dynamic sampling", "generation rounds used to fill the batch"),
    ("dynamic_sampling/signal_fraction", "dynamic sampling", "fraction of generated groups with reward variance "
     "(the pass rate of the filter)"),
    ("dynamic_sampling/topped_up", "dynamic sampling", "groups without signal used to fill the batch when the "
     "rounds ran out"),
    # advantages
    ("advantage/mean", "every step", "mean advantage over response tokens"),
    ("advantage/abs_mean", "every step", "mean |advantage|"),
    ("advantage/min", "every step", "smallest advantage"),
    ("advantage/max", "every step", "largest advantage"),
    # policy update
    ("actor/loss", "every step", "policy loss, mean over optimizer steps"),
    ("actor/pg_loss", "every step", "policy-gradient part of the loss (per token)"),
    ("actor/nft_loss", "NFT", "NFT's likelihood loss (per token)"),
    ("actor/entropy", "every step", "mean token entropy of the policy on the sampled responses"),
    ("actor/kl", "every step", "mean KL estimate to the reference policy per token (0 without a reference)"),
    ("actor/kl_coef", "every step", "KL coefficient used this step (adaptive controllers change it)"),
    ("actor/kl_in_reward", "KL in the reward", "mean per-sequence KL penalty folded into the reward"),
    ("actor/ratio_mean", "every step", "mean importance ratio pi/pi_old over tokens"),
    ("actor/ppo_kl", "policy-gradient losses", "mean log pi_old - log pi over tokens (k1): 0 on the first pass "
     "over fresh samples, how far the policy moved within the step's later mini-batches and epochs"),
    ("actor/pg_clipfrac", "every step", "fraction of tokens whose ratio was clipped (either side)"),
    ("actor/pg_clipfrac_low", "every step", "fraction clipped below 1 - clip_low"),
    ("actor/pg_clipfrac_high", "every step", "fraction clipped above 1 + clip_high"),
    ("actor/pg_clipfrac_dual", "every step", "fraction hit by dual clipping (negative advantages)"),
    ("actor/log_ratio_clampfrac", "policy-gradient losses", "fraction of tokens whose log-ratio log(pi/pi_old) "
     "exceeded algorithm.log_ratio_clamp and was clamped before exp (no gradient through their ratio)"),
    ("actor/clipfrac_low", "policy_loss cispo or clip_cov", "CISPO: fraction of tokens whose IS weight was held at "
     "1 - clip_low (the gradient stays); Clip-Cov: PPO's pg_clipfrac_low"),
    ("actor/clipfrac_high", "policy_loss cispo or clip_cov", "CISPO: fraction of tokens whose IS weight was held at "
     "1 + clip_high (the gradient stays); Clip-Cov: PPO's pg_clipfrac_high"),
    ("actor/clipfrac_dual", "policy_loss clip_cov", "PPO's pg_clipfrac_dual under Clip-Cov"),
    ("actor/clipfrac", "policy_loss gmpo", "fraction of tokens whose log-ratio GMPO clipped (in log space, by the "
     "sign of the sequence's advantage)"),
    ("actor/gate_small", "policy_loss sapo", "fraction of tokens whose SAPO gate kept less than half of the "
     "on-policy gradient (4s(1-s)rho < 0.5): the soft counterpart of a clip fraction"),
    ("actor/masked_low", "policy_loss dppo_tv or dppo_kl", "fraction of tokens with A < 0 that DPPO's trust-region "
     "mask removed (their probability already fell by more than the bound)"),
    ("actor/masked_high", "policy_loss dppo_tv or dppo_kl", "fraction of tokens with A > 0 that DPPO's trust-region "
     "mask removed (their probability already rose by more than the bound)"),
    ("actor/ratio_capped", "policy_loss dppo_* or reinforce with ratio_cap", "fraction of tokens whose detached "
     "importance weight was capped at algorithm.ratio_cap"),
    ("actor/cov_selected", "policy_loss clip_cov or kl_cov", "fraction of tokens selected by their advantage/log-prob "
     "covariance (Clip-Cov: gradient removed; KL-Cov: |log-ratio| penalised)"),
    ("advantage/cov_selected_tokens", "policy_loss clip_cov or kl_cov", "tokens the covariance selection picked over "
     "the whole rollout batch (at least one)"),
    ("actor/tis_clipfrac", "tis_cap with token_tis or seq_tis", "fraction of tokens whose sampler/learner "
     "importance weight pi_old/pi_sampler was truncated at tis_cap (seq_tis: the tokens of truncated sequences)"),
    ("actor/is_masked_frac", "tis_cap with mis or icepop", "fraction of tokens whose sampler/learner importance "
     "weight was zeroed for leaving [is_low, tis_cap] (mis: the tokens of rejected sequences)"),
    ("actor/is_weight_mean", "tis_cap", "mean sampler/learner importance weight over tokens, after truncation or "
     "masking (tokens zeroed by mis or icepop count as 0; seq_tis and mis weigh each sequence by its token count)"),
    ("actor/grad_norm", "every step", "gradient norm before clipping, mean over the updates applied"),
    ("actor/lr", "every step", "learning rate"),
    ("actor/optimizer_steps", "every step", "optimizer steps taken this step (epochs x mini-batches)"),
    ("actor/skipped_updates", "every step", "updates skipped for a NaN/Inf loss or gradient"),
    # critic (PPO)
    ("critic/loss", "PPO", "value loss, mean over optimizer steps"),
    ("critic/vf_loss", "PPO", "clipped value loss per token"),
    ("critic/vf_clipfrac", "PPO", "fraction of tokens whose value was clipped"),
    ("critic/values", "PPO", "mean predicted value"),
    ("critic/grad_norm", "PPO", "critic gradient norm"),
    ("critic/lr", "PPO", "critic learning rate"),
    ("critic/optimizer_steps", "PPO", "critic optimizer steps this step"),
    ("critic/skipped_updates", "PPO", "critic updates skipped for NaN/Inf"),
    # verifiers
    ("verify/timeouts", "every step", "samples whose verifier missed its deadline (scored reward.failure_score)"),
    ("verify/errors", "every step", "samples whose verifier raised, crashed, hit reward.worker_memory_gib or "
                                     "returned an invalid result (scored reward.failure_score)"),
    # weight sync
    ("sync/bytes", "every step", "bytes sent to each engine by the weight sync"),
    ("sync/buckets", "every step", "buckets the weights were sent in"),
    ("sync/freed_bytes", "GPU sleep mode", "GPU memory the engines released when put to sleep"),
    ("sync/logprob_max_abs_diff", "every step (rollout.sync_probe)", "largest |engine - learner| log-prob over the "
     "probe's fixed sequences after the sync, over every engine; over the threshold the run stops"),
    # time and throughput
    ("time/step_s", "every step", "wall time of the whole step"),
    ("time/<name>_s", "every step", "wall time of one phase: generate, verify (left after generation), "
     "extra_samples (rollout.extra_samples: the second round's generation and scoring, also counted in generate "
     "and verify), reference, old_logprobs, values, advantage, update, critic_update, sync, sync_probe, sleep, "
     "wake; eval (eval rows); "
     "engine_idle (step time no engine was generating), learner_wait (asynchronous: waiting for the step's "
     "batch), sync_wait (asynchronous: waiting for the engines before the weight sync)"),
    ("startup/ready_s", "once, a startup row", "seconds from the start of the run to the learners and engines being "
     "ready (the console's `ready in`)"),
    ("startup/<name>_s", "once, a startup row", "seconds of one start-up phase: data, verifier_pool, ray (instance "
     "and placement), judge_server, engine_spawn, learners (while the engines load), engines (left to wait for "
     "them after the learners), weight_sync_set_up, restore or first_sync; first_eval (the step-0 evaluation) and "
     "before_first_step (everything before step 1)"),
    ("throughput/generate_tokens_per_s", "every step", "response tokens generated per second of generation "
     "(greedy baseline responses included)"),
    ("throughput/tokens_per_s", "every step", "prompt + response tokens trained on per second of step time"),
    ("throughput/response_tokens_per_s", "every step", "response tokens trained on per second of step time"),
    # asynchronous rollouts (rollout.max_staleness >= 1)
    ("rollout/staleness/<name>", "asynchronous rollouts", "fraction of the step's samples whose oldest token "
     "was sampled this many policy versions before the learner's (the staleness histogram)"),
    ("rollout/staleness_mean", "asynchronous rollouts", "mean staleness of the step's samples, in versions"),
    ("rollout/staleness_max", "asynchronous rollouts", "largest staleness of a sample (never above max_staleness)"),
    ("rollout/reprefilled_tokens", "partial rollouts", "response tokens read again to continue unfinished "
     "responses under new weights since the previous step (the re-prefill cost of partial rollouts)"),
    ("rollout/off_policy_token_fraction", "asynchronous rollouts", "fraction of response tokens sampled by an "
     "older policy version than the one the learner starts the step with"),
    # evaluation (eval rows)
    ("eval/<name>/accuracy", "eval rows", "greedy accuracy on one held-out set"),
    ("eval/<name>/reward/mean", "eval rows", "mean verifier score on one held-out set"),
    ("eval/<name>/response_length/mean", "eval rows", "mean response length on one held-out set"),
    ("eval/<name>/response_length/clip_ratio", "eval rows", "fraction of held-out responses cut at the length limit"),
    ("eval/<name>/n", "eval rows", "prompts in the held-out set"),
    ("eval/<name>/pass@<k>", "eval rows, eval.n > 1", "unbiased pass@k over eval.n samples per prompt "
     "(Chen et al. 2021)"),
    ("eval/<name>/avg@<n>", "eval rows, eval.n > 1", "mean correctness of all eval.n samples per prompt"),
]


def _regex(pattern: str) -> re.Pattern[str]:
    """``<name>``, ``<k>``, ...: one path segment (or the rest of one)."""
    parts = re.split(r"<[a-z]+>", pattern)
    return re.compile("^" + "[^/]+".join(re.escape(p) for p in parts) + "$")


_COMPILED = [(_regex(p), p) for p, _, _ in METRICS]


def documented(key: str) -> str | None:
    """The `METRICS` pattern ``key`` falls under, or None."""
    return next((p for rx, p in _COMPILED if rx.match(key)), None)


def undocumented(keys: list[str] | set[str]) -> list[str]:
    """Logged keys (``step`` and ``kind`` aside) that the reference does not cover."""
    return sorted(k for k in keys if k not in ("step", "kind") and documented(k) is None)


def render_markdown() -> str:
    lines = [
        "# Metrics reference",
        "",
        "Generated from `rlvr/metrics.py` (`python -m rlvr.metrics > docs/metrics.md`); tests check that it is",
        "current and that every key a run logs is listed. Every logger (JSONL, console, TensorBoard, W&B,",
        "MLflow) gets the same keys and values. `<name>` stands for one path segment.",
        "",
        "| metric | logged | meaning |",
        "|---|---|---|",
    ]
    lines += [f"| `{p}` | {when} | {what} |" for p, when, what in METRICS]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
