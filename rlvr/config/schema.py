"""The typed recipe schema.

Every setting rlvr owns is a field here with a docstring; engine settings pass through untouched
(`rollout.vllm`, `learner.deepspeed`). Unknown keys are rejected (``extra="forbid"``) and cross-field
rules (batch arithmetic, files that must exist) are checked here, so a malformed recipe fails in
milliseconds, before Ray, vLLM or DeepSpeed start. This module must not import torch, vLLM or
DeepSpeed: `rlvr validate` is meant to be instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)


class RunConfig(_Strict):
    name: str = "run"
    """Run name; the run directory is ``output_dir/name`` (a timestamp is appended if it exists)."""
    output_dir: str = "runs"
    """Parent folder of run directories (relative paths resolve against the working directory)."""
    seed: int = 1
    """Seed for data order, sampling and learner initialisation."""
    steps: int = Field(20, ge=1)
    """Number of training steps; each step is one rollout batch and its policy updates."""


class LoraConfig(_Strict):
    """Low-rank adaptation (Hu et al. 2021, arXiv:2106.09685) of the policy with ``peft``: the base weights stay
    frozen, only the adapter trains, and only the adapter travels to the engines."""

    r: int = Field(16, ge=1, le=512)
    """Rank of the update ``B @ A``. The engines serve ranks up to vLLM's next supported size (8, 16, 32, ...)."""
    alpha: float = Field(32.0, gt=0)
    """Scale numerator: the update is ``(alpha / r) * B @ A`` (``alpha / sqrt(r)`` with ``rslora``)."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the adapter's input while training. Non-zero makes the learner's training log-probs differ
    from the rollout's (the ratio is then not 1 at the first update), as in every peft-based trainer."""
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    """Module names to adapt (``q_proj``, ``v_proj``, ...), or ``all-linear``: every linear layer of the
    decoder except the output layer."""
    modules_to_save: list[str] = Field(default_factory=list)
    """Modules trained in full next to the adapter (e.g. ``lm_head``). vLLM cannot take them with an
    adapter, so the sync sends merged weights instead (``sync: merged``)."""
    rslora: bool = False
    """Rank-stabilised scaling ``alpha / sqrt(r)`` (Kalajdzievski 2023, arXiv:2312.03732)."""
    sync: Literal["auto", "adapter", "merged"] = "auto"
    """What reaches the engines after each update. ``adapter``: only the adapter's tensors, loaded into vLLM's
    LoRA slot under a fresh id (the base weights never move). ``merged``: ``W + (alpha/r) B A`` for every
    adapted weight, through the full-weight reload path (vLLM then runs without LoRA). ``auto``: adapter,
    unless ``modules_to_save`` is set."""

    @property
    def sync_mode(self) -> str:
        if self.sync != "auto":
            return self.sync
        return "merged" if self.modules_to_save else "adapter"

    @model_validator(mode="after")
    def _adapter_can_carry(self) -> LoraConfig:
        if self.sync == "adapter" and self.modules_to_save:
            raise ValueError("model.lora.sync=adapter cannot carry model.lora.modules_to_save (vLLM loads only the "
                             "low-rank tensors); use sync: merged or auto")
        if isinstance(self.target_modules, list) and not self.target_modules:
            raise ValueError("model.lora.target_modules is empty: name modules or use all-linear")
        return self


class ModelConfig(_Strict):
    path: str | None = None
    """Local Hugging Face model directory (relative paths resolve against the recipe file)."""
    hub: str | None = None
    """Hugging Face hub id (e.g. ``Qwen/Qwen2.5-Math-7B``); needs a machine that reaches the hub."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) when ``hub`` is set."""
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    """Parameter dtype of the learner and the rollout engine."""
    lora: LoraConfig | None = None
    """Train a LoRA adapter instead of every weight (see `LoraConfig`); None: full fine-tuning."""

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if (self.path is None) == (self.hub is None):
            raise ValueError("set exactly one of model.path (local directory) or model.hub (hub id)")
        if self.path is not None and not (Path(self.path) / "config.json").is_file():
            raise ValueError(f"no Hugging Face model (config.json) in path {self.path!r}")
        return self

    @property
    def source(self) -> str:
        """What ``from_pretrained`` and vLLM take: the local directory or the hub id."""
        return self.path if self.path is not None else str(self.hub)


class DataSource(_Strict):
    path: str | None = None
    """Local ``.jsonl``/``.json``/``.parquet`` file (relative paths resolve against the recipe file)."""
    hub: str | None = None
    """Hugging Face dataset id, loaded with ``datasets.load_dataset``."""
    subset: str | None = None
    """Dataset configuration name (``load_dataset(hub, subset)``)."""
    data_files: str | list[str] | None = None
    """Files inside a hub dataset to load (``load_dataset(hub, data_files=...)``)."""
    split: str = "train"
    """Split to read."""
    name: str | None = None
    """Label used in metric names (defaults to the file stem or the hub id)."""
    prompt_key: str | None = None
    """This source's prompt column, when it differs from ``data.prompt_key``."""
    answer_key: str | None = None
    """This source's ground-truth column, when it differs from ``data.answer_key``."""

    @model_validator(mode="after")
    def _one_source(self) -> DataSource:
        if (self.path is None) == (self.hub is None):
            raise ValueError("set exactly one of path (local file) or hub (dataset id)")
        if self.path is not None:
            p = Path(self.path)
            if p.suffix not in (".jsonl", ".json", ".parquet"):
                raise ValueError(f"path: {self.path!r} is not a .jsonl, .json or .parquet file")
            if not p.is_file():
                raise ValueError(f"path: dataset file {self.path!r} does not exist")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return Path(self.path).stem if self.path else str(self.hub).replace("/", "_")


class DataConfig(_Strict):
    train: list[DataSource] = Field(min_length=1)
    """Training prompt sources, concatenated."""
    prompt_key: str = "prompt"
    """Column holding the prompt text (or a list of chat messages)."""
    answer_key: str = "answer"
    """Column holding the ground truth handed to the verifier."""
    verifier_key: str | None = None
    """Optional column naming the verifier of each row; rows without it use ``reward.verifier``."""
    template: str = "raw"
    """Prompt template: one of ``rlvr.data.templates.TEMPLATES`` (raw, zero, simple, qwen_boxed, chat)."""
    instruction: str | None = None
    """Text appended to the raw question before the template (to the last user turn of chat messages):
    e.g. ``template: chat`` with ``instruction: "\nPlease reason step by step, and put your final answer
    within \\boxed{}."`` reproduces a paper that adds its instruction and then applies the chat template."""
    max_prompt_tokens: int = Field(512, ge=1)
    """Rows whose templated prompt is longer are dropped (counted and logged)."""
    shuffle: bool = True
    """Shuffle prompts every epoch (seeded by ``run.seed``)."""
    bad_rows: Literal["drop", "error"] = "drop"
    """Rows that cannot be used (not JSON, no or empty prompt/answer, a prompt that is neither text nor chat
    messages or that the template rejects, an unknown verifier name, longer than ``max_prompt_tokens``):
    ``drop`` skips them and logs counts per reason; ``error`` stops before training at the first one."""


class SyncProbeConfig(_Strict):
    """After every weight sync, the engines' log-probs of a few fixed sequences are compared with the
    learner's (`rlvr.sync_probe`): an engine that did not get the new weights (a skipped bucket, a stale
    prefix cache, an adapter never loaded) stops the run instead of sampling an old policy unseen."""

    enabled: bool = True
    """Probe every sync (``sync/logprob_max_abs_diff``, ``time/sync_probe_s``); false: no probe."""
    sequences: int = Field(4, ge=1)
    """How many fixed sequences: the first training prompts, in data order."""
    tokens: int = Field(32, ge=1)
    """Positions compared per sequence: the prompt's last ``tokens`` tokens (each given all before it)."""
    max_abs_diff: float | None = Field(None, gt=0)
    """Largest allowed |engine - learner| log-prob on any probed token; None: 1e-3 for float32 models (the
    two sides agree to ~1e-5 there) and 1.0 for bf16/fp16, whose kernels differ by tenths of a nat while a
    missed sync of a layer moves log-probs by whole nats."""


class ExtraSamplesConfig(_Strict):
    """Variable group sizes: after the step's first round of ``rollout.n`` responses per prompt, a prompt whose
    pass rate lies in ``[min_pass_rate, max_pass_rate]`` gets ``n`` more responses in a second round (its group
    then holds ``rollout.n + n``), so the samples go where the verdicts disagree and the advantage has signal.
    Every advantage estimator groups by prompt, whatever the group's size."""

    n: int = Field(ge=1)
    """Extra responses for each prompt in the band."""
    min_pass_rate: float = Field(0.2, ge=0, le=1)
    """Lowest first-round pass rate (fraction of correct responses) that gets extra responses."""
    max_pass_rate: float = Field(0.8, ge=0, le=1)
    """Highest first-round pass rate that gets extra responses."""

    @model_validator(mode="after")
    def _band(self) -> ExtraSamplesConfig:
        if self.min_pass_rate > self.max_pass_rate:
            raise ValueError(f"extra_samples: min_pass_rate={self.min_pass_rate} is above "
                             f"max_pass_rate={self.max_pass_rate}: no prompt could get extra responses")
        return self


class RolloutConfig(_Strict):
    num_engines: int = Field(1, ge=1)
    """Number of vLLM engines (Ray actors)."""
    tensor_parallel_size: int = Field(1, ge=1)
    """GPUs per engine (vLLM tensor parallelism, its workers placed on the run's placement groups; an
    engine never spans nodes). GPU only."""
    chunks_per_engine: int = Field(4, ge=1)
    """With several engines, each step's prompts are cut into this many chunks per engine, handed to
    whichever engine is free (load balancing; more chunks balance better, fewer batch better)."""
    prompts_per_step: int = Field(32, ge=1)
    """Prompts per training step."""
    n: int = Field(8, ge=1)
    """Responses sampled per prompt (the group size G)."""
    temperature: float = Field(1.0, gt=0)
    """Sampling temperature for training rollouts."""
    top_p: float = Field(1.0, gt=0, le=1)
    """Nucleus sampling for training rollouts."""
    max_new_tokens: int = Field(1024, ge=1)
    """Maximum response length; longer responses are truncated (finish reason "length")."""
    kv_cache_gib: int = Field(1, ge=1)
    """CPU only: KV-cache size per engine (``VLLM_CPU_KVCACHE_SPACE``); vLLM would take GiBs by itself."""
    gpu_memory_utilization: float = Field(0.5, gt=0, le=1)
    """GPU only: fraction of device memory vLLM may use."""
    vllm: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments passed to ``vllm.LLM`` untouched."""
    weight_transfer: Literal["auto", "reload", "nccl", "ipc"] = "auto"
    """How updated weights reach the engines: ``reload`` (Ray's object store + vLLM's ``reload_weights``,
    any hardware), ``nccl`` (vLLM's NCCL weight transfer broadcast from learner rank 0; GPU, engines on
    their own GPUs), ``ipc`` (vLLM's CUDA IPC transfer; GPU, every engine on a GPU that holds a learner
    rank). ``auto``: reload on CPU; on GPU ipc when colocated, nccl when split (``resources.colocate``).
    nccl and ipc need CUDA: without it the engines refuse to start."""
    sleep: Literal["auto", "on", "off"] = "auto"
    """GPU only: vLLM sleep mode (level 2) between rollouts, so the learners get the engines' GPU memory
    (weights and KV cache) while they train; the weight sync wakes the engines. ``auto``: on when
    colocated on GPU. ``on`` without CUDA makes the engines refuse to start."""

    sync_probe: SyncProbeConfig = Field(default_factory=SyncProbeConfig)
    """The check after every weight sync (see `SyncProbeConfig`)."""
    max_staleness: int = Field(0, ge=0)
    """Asynchronous RL: how many policy versions a training sample may lag behind the learner it trains
    (``rlvr.rollout.producer``). 0: the synchronous loop (generate, verify, train, sync, in turn). 1:
    one-step-off, the next step's batch is generated while this step verifies, trains and syncs. K > 1:
    the engines run up to K batches ahead. The loss corrects with ``algorithm.tis_cap`` /
    ``algorithm.is_correction`` against the sampler's log-probs."""
    partial: bool = False
    """Asynchronous RL only (``max_staleness`` >= 1): partial rollouts. Generation runs in segments of
    ``segment_tokens``; a weight update waits only for the running segment, and unfinished responses
    continue under the new weights (re-prefilled), each token stamped with the policy version that
    sampled it. Batches overlap, so the next step's prompts fill the engines while long responses finish."""
    segment_tokens: int = Field(32, ge=1)
    """Partial rollouts: tokens per generation segment (shorter: quicker weight updates, more re-prefill)."""
    extra_samples: ExtraSamplesConfig | None = None
    """Variable group sizes: more responses for prompts whose first-round pass rate is in a band
    (`ExtraSamplesConfig`); None: every group holds ``n``."""

    @model_validator(mode="after")
    def _async_settings(self) -> RolloutConfig:
        if self.partial and self.max_staleness == 0:
            raise ValueError("rollout.partial=true needs rollout.max_staleness >= 1: partial rollouts continue "
                             "responses under newer weights, which a synchronous run never has")
        return self

    @field_validator("sleep", mode="before")
    @classmethod
    def _sleep_from_yaml_bool(cls, v: Any) -> Any:
        """YAML reads a bare ``on`` / ``off`` (in a recipe or an override) as a boolean."""
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v


class AlgorithmConfig(_Strict):
    """The loss module, as parts. ``name`` picks a preset (``rlvr/algorithms/presets/``) that fills
    every part the recipe does not set itself; the resolved recipe shows the effective values."""

    name: str = "grpo"
    """Preset from the registry (``rlvr.algorithms.ALGORITHM_NAMES``) or ``pkg.mod:factory`` / ``file.py:factory``."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for a custom loss factory named by import path (``factory(cfg, **kwargs)``)."""
    loss: Literal["policy_gradient", "nft"] = "policy_gradient"
    """Loss family: PPO-style policy gradient (clip, ratio level, KL, entropy) or NFT's likelihood loss."""
    lr: float = Field(1e-6, gt=0)
    """AdamW learning rate."""
    warmup_steps: int = Field(0, ge=0)
    """Linear learning-rate warm-up, in ``warmup_unit``: the k-th unit (1-based) uses k / warmup_steps of ``lr``."""
    warmup_unit: Literal["updates", "steps", "verl_steps"] = "updates"
    """What ``warmup_steps`` and the decay count: optimizer ``updates``, or training ``steps`` (one rollout
    batch, ``mini_batches * epochs`` updates; verl and OpenRLHF step their schedulers per training step), or
    ``verl_steps``: training steps with verl's indexing, whose first step runs at a rate of 0 (warm-up t / W
    from t = 0; with the constant schedule even without warm-up), to reproduce a verl run exactly."""
    lr_decay: Literal["constant", "linear", "cosine"] = "constant"
    """After warm-up: constant, or linear / cosine decay to ``min_lr_ratio * lr`` at the end of ``run.steps``
    (``rlvr.learner.schedule``)."""
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    """Floor of the decay, as a fraction of ``lr`` (verl ``min_lr_ratio``; 0 decays to zero)."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    grad_clip: float = Field(1.0, ge=0)
    """Gradient-norm clip (0 disables)."""
    mini_batches: int = Field(1, ge=1)
    """Optimizer steps per rollout batch (the batch is split into this many mini-batches of whole groups)."""
    epochs: int = Field(1, ge=1)
    """Passes over the rollout batch (PPO epochs)."""

    advantage: Literal[
        "grpo", "drgrpo", "lite", "rloo", "reinforce_pp", "reinforce_pp_baseline", "gae", "nft", "opo", "passk",
        "remax", "gdpo", "gpg",
    ] = "grpo"
    """Advantage estimator (see ``rlvr.algorithms.parts.advantages``). Group estimators group the samples by
    prompt, so groups may differ in size (``rollout.extra_samples``)."""
    pass_k: int = Field(1, ge=1)
    """``passk`` advantage (Chen et al., arXiv 2508.10751): the k of pass@k it optimises (k = 1 is GRPO with a
    population std); at most ``rollout.n``."""
    gdpo_terms: list[str] | None = None
    """``gdpo`` advantage: the reward terms (names in the compose verifier's ``terms``) normalised one by one
    within each group; None: every term the verifiers report."""
    gdpo_weights: dict[str, float] = Field(default_factory=dict)
    """``gdpo`` advantage: weight of each term in the sum of normalised terms (a term not named here: 1)."""
    std_mode: Literal["unbiased", "population"] = "unbiased"
    """GRPO group std: ``unbiased`` (N-1, torch.std, verl/OpenRLHF) or ``population`` (N)."""
    eps: float = Field(1e-6, gt=0)
    """Added to the std before dividing."""
    gamma: float = Field(1.0, ge=0, le=1)
    """Discount for REINFORCE++ returns and GAE."""
    lam: float = Field(0.95, ge=0, le=1)
    """GAE lambda (PPO)."""
    critic_lr: float = Field(1e-5, gt=0)
    """PPO: learning rate of the value model (a separate DeepSpeed engine)."""
    critic_warmup_steps: int = Field(0, ge=0)
    """PPO: the value model's warm-up, in ``warmup_unit`` (its schedule is its own, not the policy's)."""
    critic_lr_decay: Literal["constant", "linear", "cosine"] = "constant"
    """PPO: the value model's decay after warm-up, to ``min_lr_ratio * critic_lr``."""
    critic_weight_decay: float | None = Field(None, ge=0)
    """PPO: the value model's AdamW weight decay; None: ``weight_decay``."""
    value_loss_coef: float = Field(1.0, gt=0)
    """PPO: weight of the (clipped) value loss, applied before the critic's gradient clip (verl and
    OpenRLHF ``vf_coef``/``value_loss_coef``; Tulu 3 uses 0.1). The critic has its own optimizer, so this
    scales its step only through the gradient clip and AdamW's epsilon."""
    value_clip: float | None = Field(0.2, gt=0)
    """PPO: clip of the value update around the pre-update values (None: unclipped)."""
    value_loss_agg: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"] = (
        "token-mean")
    """PPO: how the critic's per-token value loss is reduced over the mini-batch (the policy's modes;
    ``rlvr.algorithms.parts.aggregation``). verl's ``critic.loss_agg_mode`` defaults to token-mean."""

    policy_loss: Literal[
        "ppo_clip", "cispo", "sapo", "gmpo", "gpg", "dppo_tv", "dppo_kl", "clip_cov", "kl_cov", "reinforce"
    ] = "ppo_clip"
    """Per-token policy loss of the policy-gradient family (``rlvr.algorithms.parts.policy``): PPO-clip, CISPO's
    clipped stop-gradient IS weight, SAPO's soft gate, GMPO's geometric-mean ratio, GPG's -A log pi, DPPO's
    TV / KL trust-region masks, Clip-Cov / KL-Cov covariance-selected tokens, or REINFORCE with a capped IS weight."""
    log_ratio_clamp: float | None = Field(20.0, gt=0)
    """Policy-gradient losses: the log-ratio log(pi / pi_old) (GSPO: the sequence's) is clamped to [-c, c] before
    exp (verl: 20; GSPO's preset 10), so a token far off its sampling policy cannot overflow exp into a NaN
    gradient; clamped tokens get no gradient through the ratio and are counted in ``actor/log_ratio_clampfrac``.
    None: no clamp. (NFT clamps its own log-ratio at 10 from above, as NVlabs/NFT does.)"""
    sapo_tau_pos: float = Field(1.0, gt=0)
    """SAPO: temperature of the soft gate for positive advantages (paper: 1.0)."""
    sapo_tau_neg: float = Field(1.05, gt=0)
    """SAPO: temperature of the soft gate for negative advantages (paper: 1.05; higher decays faster)."""
    ratio_cap: float | None = Field(None, gt=0)
    """DPPO and REINFORCE: the detached importance weight is min(ratio, C); None: uncapped."""
    cov_fraction: float = Field(2e-4, gt=0, le=1)
    """Clip-Cov / KL-Cov (Cui et al., arXiv 2505.22617): the fraction of the batch's tokens selected by their
    advantage/log-prob covariance (at least one)."""
    clip_cov_bounds: tuple[float, float] = (1.0, 5.0)
    """Clip-Cov: only tokens whose covariance lies strictly inside (low, high) may be selected."""
    kl_cov_coef: float = Field(1.0, ge=0)
    """KL-Cov: coefficient of the |log-ratio| penalty on the selected tokens."""
    ratio_level: Literal["token", "sequence", "sequence_token"] = "token"
    """Importance ratio: per token (PPO), length-normalised per sequence (GSPO), or GSPO-token."""
    clip_low: float = Field(0.2, ge=0)
    """Ratio lower bound ``1 - clip_low``."""
    clip_high: float = Field(0.2, ge=0)
    """Ratio upper bound ``1 + clip_high`` (DAPO's clip-higher: 0.28)."""
    dual_clip: float | None = Field(None, gt=1)
    """Dual-clip constant c for negative advantages (loss capped at -A*c; verl ``clip_ratio_c``)."""
    loss_agg: Literal[
        "token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm", "token-sum-constant"
    ] = "token-mean"
    """Loss aggregation; normalisers are global over the mini-batch (all micro-batches and ranks)."""
    loss_agg_constant: float | None = Field(None, gt=0)
    """Constant of ``seq-mean-token-sum-norm`` (default: rollout.max_new_tokens) and ``token-sum-constant``."""

    kl_placement: Literal["none", "reward", "loss"] = "none"
    """Where the KL to the frozen reference goes: nowhere, into the token rewards, or into the loss."""
    kl_estimator: Literal["k1", "k2", "k3", "k3+", "abs", "k1+", "abs+"] = "k3"
    """KL estimator (Schulman): k3 is verl's ``low_var_kl``; abs is |log pi - log pi_ref|; a ``+`` suffix keeps
    the estimator's value with k2's gradient (straight-through, the unbiased gradient of KL(pi || pi_ref))."""
    kl_coef: float = Field(0.0, ge=0)
    """KL coefficient beta (the initial value when ``kl_target`` is set)."""
    kl_target: float | None = Field(None, gt=0)
    """Adaptive KL (Ziegler et al. 2019): move beta towards this per-token KL target."""
    kl_horizon: int = Field(10000, ge=1)
    """Adaptive KL horizon, in samples."""
    entropy_coef: float = Field(0.0, ge=0)
    """Entropy bonus coefficient."""
    tis_cap: float | None = Field(None, gt=0)
    """Upper bound C of the importance-sampling correction between the learner's ``pi_old`` and the
    sampler's log-probs (vLLM's, possibly ``rollout.max_staleness`` policy versions behind): the weight
    ``pi_old / pi_sampler`` is truncated at C (``token_tis``, ``seq_tis``) or the token/sequence is masked
    above it (``mis``, ``icepop``). None disables the correction; the mismatch is logged every step either way."""
    is_correction: Literal["token_tis", "seq_tis", "mis", "icepop"] = "token_tis"
    """Which correction ``tis_cap`` applies (``rlvr.algorithms.parts.correction``): ``token_tis`` truncates
    each token's weight; ``seq_tis`` truncates the sequence's weight (product over its tokens); ``mis``
    (masked IS) drops whole sequences whose weight leaves ``[is_low, tis_cap]`` and weights the rest;
    ``icepop`` drops the tokens whose weight leaves ``[is_low, tis_cap]`` and weights the rest."""
    is_low: float | None = Field(None, gt=0)
    """Lower bound of the band for ``mis`` and ``icepop`` (verl's and TRL's IcePop settings use 0.5 with
    tis_cap 5.0); None: no lower bound. Unused by the truncating corrections."""

    dynamic_sampling: bool = False
    """DAPO dynamic sampling: drop groups whose rewards are all equal, keep generating until the batch is full."""
    max_generation_batches: int = Field(10, ge=1)
    """Dynamic sampling: at most this many generation rounds per step."""
    generation_batch_multiplier: float = Field(1.0, ge=1)
    """Dynamic sampling: each round generates ``ceil(multiplier * prompts_per_step)`` prompts (DAPO's
    ``gen_prompt_bsz`` 1536 for 512 training prompts is 3.0); groups with signal beyond what the step
    needs are discarded, as in verl."""
    when_rounds_run_out: Literal["pad", "stop"] = "pad"
    """Dynamic sampling, when ``max_generation_batches`` rounds still leave the batch short: ``pad`` it with
    dropped (no-signal) groups and go on (counted in ``dynamic_sampling/topped_up``), or ``stop`` the run
    with a message (verl's DAPO recipe raises)."""
    overlong_buffer_ratio: float | None = Field(None, gt=0, lt=1)
    """DAPO soft overlong punishment over the last ``ratio * max_new_tokens`` tokens of the budget."""
    overlong_penalty_factor: float = Field(1.0, ge=0)
    """Scale of the overlong punishment (verl ``penalty_factor``)."""
    overlong_filter: bool = False
    """Mask truncated responses out of the loss (DAPO's overlong filtering)."""
    non_eos_penalty: float | None = None
    """Reward of responses that hit the length limit without EOS (Tulu 3 uses -10); None leaves them."""

    nft_neg_weight: float = 1.0
    """NFT: weight of the negative (implicit negative policy) term; 0 gives RFT."""
    nft_prompt_weight: Literal[0, 1, 2] = 1
    """NFT prompt weight: 0 -> 1, 1 -> 1 - r_hat (matches Dr. GRPO on-policy), 2 -> sqrt((1 - r_hat)/r_hat) (GRPO)."""
    nft_clamp_negative: float = 1.0
    """NFT: value-only lower clamp of the negative proxy ``(1 - r_hat R)/(1 - r_hat)``."""
    nft_clamp_positive: float = 0.0
    """NFT: value-only lower clamp of the positive ratio (0: none)."""
    nft_ratio: Literal["token", "sequence"] = "token"
    """NFT ratio: per token, or the full (not length-normalised) sequence ratio."""

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """Fill every field the recipe leaves unset from the named preset."""
        if not isinstance(data, dict):
            return data
        from rlvr.algorithms.registry import preset_defaults

        return {**preset_defaults(str(data.get("name", "grpo"))), **data}

    @model_validator(mode="after")
    def _consistent(self) -> AlgorithmConfig:
        if (self.loss == "nft") != (self.advantage == "nft"):
            raise ValueError("loss: nft and advantage: nft go together (NFT uses correct rates, not advantages)")
        if self.kl_placement != "none" and self.kl_coef == 0 and self.kl_target is None:
            raise ValueError(f"kl_placement={self.kl_placement!r} needs kl_coef > 0 (or kl_target)")
        if self.kl_placement == "reward" and self.kl_estimator != "k1":
            raise ValueError("kl_placement=reward uses the k1 estimator per token (set kl_estimator: k1)")
        if self.kwargs and ":" not in self.name:
            raise ValueError("kwargs are for a custom loss factory (name: pkg.module:factory); presets take fields")
        if self.loss_agg == "token-sum-constant" and self.loss_agg_constant is None:
            raise ValueError("loss_agg=token-sum-constant needs loss_agg_constant")
        if self.tis_cap is not None and self.loss == "nft":
            raise ValueError("tis_cap: the importance-sampling corrections belong to the policy-gradient loss; "
                             "NFT's likelihood loss does not apply them")
        if self.is_low is not None and self.tis_cap is None:
            raise ValueError("is_low bounds the band of an importance-sampling correction, which tis_cap turns on; "
                             "set tis_cap too")
        if self.is_low is not None and self.is_correction not in ("mis", "icepop"):
            raise ValueError(f"is_low bounds the band of is_correction mis or icepop, not {self.is_correction}")
        if self.is_low is not None and self.tis_cap is not None and self.is_low >= self.tis_cap:
            raise ValueError(f"is_low={self.is_low} must be below tis_cap={self.tis_cap}: the band would be empty")
        self._policy_loss_parts()
        return self

    def _policy_loss_parts(self) -> None:
        """The settings each per-token policy loss reads, refused where they would be silently ignored."""
        pl = self.policy_loss
        if pl != "ppo_clip" and self.loss != "policy_gradient":
            raise ValueError(f"policy_loss={pl} belongs to the policy-gradient loss, not loss: {self.loss}")
        if pl != "ppo_clip" and self.ratio_level != "token":
            raise ValueError(f"ratio_level={self.ratio_level} is PPO-clip's (GSPO); policy_loss={pl} takes the "
                             "token ratio (GMPO forms its own geometric mean)")
        if self.dual_clip is not None and pl not in ("ppo_clip", "clip_cov"):
            raise ValueError(f"dual_clip caps PPO-clip's loss for negative advantages; policy_loss={pl} has no "
                             "such clip")
        if self.ratio_cap is not None and pl not in ("dppo_tv", "dppo_kl", "reinforce"):
            raise ValueError(f"ratio_cap caps the detached importance weight of dppo_tv, dppo_kl and reinforce, "
                             f"not policy_loss={pl} (the sampler/learner correction is tis_cap)")
        if pl == "gpg" and self.mini_batches * self.epochs > 1:
            raise ValueError("policy_loss=gpg has no importance ratio: with mini_batches * epochs > 1 the later "
                             "updates would treat samples of an older policy as fresh (use cispo or reinforce, "
                             "which weight them)")
        low, high = self.clip_cov_bounds
        if pl == "clip_cov" and not low < high:
            raise ValueError(f"clip_cov_bounds=({low}, {high}) is empty: the low bound must be below the high one")
        if self.gdpo_terms is not None and not self.gdpo_terms:
            raise ValueError("gdpo_terms is empty: name the reward terms to normalise, or leave it unset for all")
        unknown = sorted(set(self.gdpo_weights) - set(self.gdpo_terms or self.gdpo_weights))
        if unknown:
            raise ValueError(f"gdpo_weights names {unknown}, which gdpo_terms {self.gdpo_terms} leaves out")
        if (self.gdpo_terms is not None or self.gdpo_weights) and self.advantage != "gdpo":
            raise ValueError(f"gdpo_terms / gdpo_weights belong to the gdpo advantage, not {self.advantage}")


class LearnerConfig(_Strict):
    num_ranks: int = Field(1, ge=1)
    """Data-parallel DeepSpeed ranks (one Ray actor each)."""
    zero_stage: Literal[0, 1, 2, 3] = 2
    """DeepSpeed ZeRO stage."""
    micro_batch_tokens: int = Field(8192, ge=1)
    """Token budget of one micro-batch: the sum of its sequences' tokens when packed, rows x longest when padded."""
    packing: bool = True
    """Pack each micro-batch's sequences into one row without padding, attention kept within each sequence
    (``rlvr.learner.packing``). Used where exact and fast: on CPU, and on CUDA with flash-attention's
    variable-length kernel; elsewhere padded rows, and the log says which. False: always padded rows."""
    logprob_chunk_tokens: int = Field(1024, ge=0)
    """Compute the output layer, log-softmax, target log-probs and entropy this many tokens at a time, recomputed
    in the backward pass, so ``tokens x vocab`` logits never exist at once. 0: all at once. Not with ZeRO-3 and a
    frozen output layer (LoRA without ``lm_head`` in ``modules_to_save``): ZeRO-3 does not gather it again for
    the recompute, so the logits are computed whole there (the log says so)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass."""
    master_dtype: Literal["float32", "float64"] = "float32"
    """Learner weights and gradients when ``model.dtype`` is float32 (with bf16/fp16 DeepSpeed keeps
    fp32 masters itself). float64 is for exact numerical checks on CPU; engines still get ``model.dtype``."""
    deepspeed: dict[str, Any] = Field(default_factory=dict)
    """Extra DeepSpeed config, merged over the one rlvr builds."""
    max_skipped_steps: int = Field(3, ge=1)
    """An update whose loss or gradients hold NaN/Inf is skipped and counted (``actor/skipped_updates``);
    this many steps in a row with every update skipped stop the run."""


class NamedVerifierConfig(_Strict):
    verifier: str
    """An entry-point name, ``package.module:name`` or ``path/to/file.py:name``."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for the verifier."""
    timeout_s: float | None = Field(None, gt=0)
    """Deadline for one task of this verifier (a sample, or a batch for a model judge); None: ``reward.timeout_s``."""


class JudgeServerConfig(_Strict):
    model: str
    """Judge model for rlvr's own vLLM OpenAI-compatible server: a local directory (relative to the recipe)
    or a hub id."""
    num_cpus: float = Field(1.0, gt=0)
    """CPUs reserved for the judge's Ray actor."""
    num_gpus: float = Field(0.0, ge=0)
    """GPUs reserved for the judge (its own, never the policy engines'). 0 (CPU) only with vllm-cpu: vLLM's GPU
    build refuses it at start. A fraction (e.g. 0.5) shares a GPU: ``--gpu-memory-utilization`` then defaults
    to that fraction of vLLM's 0.9."""
    vllm_args: dict[str, Any] = Field(default_factory=dict)
    """Extra ``vllm serve`` arguments, e.g. ``{max-model-len: 4096, gpu-memory-utilization: 0.8}``."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment for the server process."""
    ready_timeout_s: float = Field(900.0, gt=0)
    """Deadline for the server to load the model and answer its health check."""


JUDGE_SERVER_URL = "judge_server"
"""Value of a verifier's ``base_url`` kwarg that means "the URL of ``reward.judge_server``"."""


class RewardConfig(_Strict):
    verifier: str = "exact_int"
    """Default verifier: a name from ``verifiers``, an entry-point name, ``package.module:name`` or
    ``path/to/file.py:name``. ``compose`` with ``terms`` in ``verifier_kwargs`` sums weighted verifiers."""
    verifier_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for the default verifier."""
    verifiers: dict[str, NamedVerifierConfig] = Field(default_factory=dict)
    """Named verifiers; a row picks one by name through ``data.verifier_key`` (rows without it use ``verifier``)."""
    num_workers: int = Field(2, ge=1)
    """Verifier worker processes."""
    timeout_s: float = Field(10.0, gt=0)
    """Hard deadline per sample; a verifier that exceeds it is killed and the sample scores ``failure_score``."""
    failure_score: float = 0.0
    """Reward of a sample whose verifier timed out, crashed or raised. Set it to the worst score of a ±1
    scheme (-1), or a policy is paid for making its verifier hang."""
    worker_memory_gib: float | None = Field(4.0, gt=0)
    """Address-space cap (RLIMIT_AS) of each verifier worker, in GiB; None: no cap. A verifier that allocates
    past it gets MemoryError, its sample scores ``failure_score`` (reason ``error: memory: ...``) and the worker
    is replaced. It counts virtual memory: a worker with the built-in verifiers peaks at about 0.2 GiB, ``import
    torch`` adds about 0.5 GiB and each thread 8 MiB of stack; raise it for a verifier that loads a model."""
    judge_server: JudgeServerConfig | None = None
    """Start a vLLM OpenAI-compatible server for a model judge as its own Ray actor; verifiers reach it with
    ``base_url: judge_server``."""

    @model_validator(mode="after")
    def _judge_server_used(self) -> RewardConfig:
        wants = _uses_judge_server(self.verifier_kwargs) or any(
            _uses_judge_server(v.kwargs) for v in self.verifiers.values()
        )
        if wants and self.judge_server is None:
            raise ValueError(f"a verifier has base_url: {JUDGE_SERVER_URL} but reward.judge_server is not set")
        if self.verifier in self.verifiers and self.verifier_kwargs:
            raise ValueError(
                f"reward.verifier names reward.verifiers.{self.verifier}, which has its own kwargs; "
                "leave reward.verifier_kwargs empty"
            )
        return self


def _uses_judge_server(value: Any) -> bool:
    """Does any (nested) ``base_url`` kwarg ask for the judge server?"""
    if isinstance(value, dict):
        return value.get("base_url") == JUDGE_SERVER_URL or any(_uses_judge_server(v) for v in value.values())
    if isinstance(value, list):
        return any(_uses_judge_server(v) for v in value)
    return False


class EvalConfig(_Strict):
    data: list[DataSource] = Field(default_factory=list)
    """Held-out sets, scored greedily through vLLM at step 0, every ``interval`` steps and at the end."""
    interval: int = Field(0, ge=0)
    """Evaluate every this many steps (0: only before training and at the end)."""
    max_new_tokens: int | None = None
    """Response budget for evaluation (defaults to ``rollout.max_new_tokens``)."""
    n: int = Field(1, ge=1)
    """Samples per prompt: 1 is greedy accuracy; more also logs ``pass@k`` (k = 1, 2, 4, ..., n) and ``avg@n``."""
    do_sample: bool | None = None
    """Sample at ``temperature``/``top_p`` (True) or decode greedily (False); None: sample when ``n`` > 1.
    True with ``n: 1`` on a set that repeats each problem k times is verl's avg@k (DAPO's AIME eval)."""
    temperature: float = Field(1.0, gt=0)
    """Sampling temperature when sampling."""
    top_p: float = Field(1.0, gt=0, le=1)
    """Nucleus sampling when sampling (DAPO's validation uses 0.7, SimpleRL-Zoo's paper evaluation 0.95)."""

    @model_validator(mode="after")
    def _greedy_is_one_sample(self) -> EvalConfig:
        if self.do_sample is False and self.n > 1:
            raise ValueError(f"eval.do_sample=false decodes greedily: n={self.n} samples would all be the same")
        return self


class CheckpointConfig(_Strict):
    interval: int = Field(0, ge=0)
    """Save a resumable checkpoint (learner and critic weights, optimizer, scheduler, data position, RNG,
    with a Hugging Face export in ``hf/``) every this many steps; 0: only at the last step and on
    preemption (SIGTERM/SIGUSR1), which always save one."""
    keep: int = Field(2, ge=1)
    """Complete checkpoints kept (older ones are deleted once a newer one is complete)."""
    final: bool = True
    """Also export ``checkpoints/final`` (Hugging Face format) at the end of training."""
    merge_lora: bool = False
    """With ``model.lora``: every ``hf/`` export also holds ``hf/merged/``, the base model with the adapter
    merged in (a plain Hugging Face model). Without it ``hf/`` holds the adapter only (peft format)."""


class LoggingConfig(_Strict):
    verbose: bool = False
    """Also show the workers' own output (vLLM engines, DeepSpeed learners, Ray) on the console (``rlvr train
    --verbose``). It always goes to ``RUN/logs/<role>-<i>.log``; the console otherwise shows rlvr's lines only."""
    samples_per_step: int = Field(4, ge=0)
    """Generations (with scores) written to ``samples.jsonl`` per step."""
    loggers: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(default_factory=list)
    """Metric loggers besides ``metrics.jsonl`` and the console (always on); several at once is fine."""
    wandb_project: str = "rlvr"
    """Weights & Biases project."""
    wandb_mode: Literal["offline", "online"] = "offline"
    """W&B mode: offline writes ``RUN/wandb`` without any network (``wandb sync`` it later)."""
    mlflow_tracking_uri: str | None = None
    """MLflow tracking URI; None: a local file store in ``RUN/mlruns``."""
    mlflow_experiment: str = "rlvr"
    """MLflow experiment name."""


class ResourcesConfig(_Strict):
    """What the run occupies. rlvr reserves it with Ray placement groups before starting any worker and
    checks it against the cluster first, so a recipe that does not fit fails at once, naming the shortfall.

    GPU devices: colocated, learner rank r (with its reference model), critic rank r and engine slice r share
    device r, so the run needs max(learner.num_ranks, num_engines x tensor_parallel_size) GPUs; split, the
    learners (and critic ranks, sharing their devices) take the first learner.num_ranks devices and the
    engines the next num_engines x tensor_parallel_size. Devices are reserved node by node (one placement
    group per node, ``gpus_per_node`` bundles), so an engine's tensor-parallel group stays on one node.
    On a CPU cluster every actor reserves ``cpus_per_worker`` CPUs and devices play no part."""

    nodes: int | None = Field(None, ge=1)
    """Nodes the run spans. None: as many as the devices need. Checked against the alive nodes."""
    gpus_per_node: int | None = Field(None, ge=0)
    """GPUs per node. None: what the cluster's nodes have (0 on a CPU cluster, which runs everything on CPU)."""
    colocate: bool = True
    """Rollout engines share devices with the learners (vLLM sleeps while they train) or have their own."""
    cpus_per_worker: float = Field(1.0, gt=0)
    """Logical CPUs reserved per actor (engine, learner rank, critic rank)."""
    pin_cpus: Literal["auto", "on", "off"] = "auto"
    """CPU runs: pin the rollout engines and the learners to disjoint cores of their node (``auto``: when
    ``rollout.max_staleness`` >= 1, so generation and training really run at the same time; in the
    synchronous loop they take turns and each may use every core). Engines get the first half of the
    cores, learners (and critic ranks) the rest. No effect on GPU runs."""

    @field_validator("pin_cpus", mode="before")
    @classmethod
    def _pin_from_yaml_bool(cls, v: Any) -> Any:
        """YAML reads a bare ``on`` / ``off`` as a boolean."""
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v


class RayConfig(_Strict):
    address: str | None = None
    """Ray cluster to attach to (``auto`` or ``host:port``); None starts a local instance."""
    num_cpus: int | None = None
    """CPUs of the local Ray instance (None: all)."""
    startup_timeout_s: float = Field(900.0, gt=0)
    """Deadline for engines and learners to start (model load, compilation)."""
    call_timeout_s: float = Field(1800.0, gt=0)
    """Deadline for any one remote call (a generate, an update); a worker that misses it fails the run."""


class RecipeConfig(_Strict):
    """A whole recipe. See ``recipes/`` for annotated examples."""

    run: RunConfig = Field(default_factory=RunConfig)
    model: ModelConfig
    data: DataConfig
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    learner: LearnerConfig = Field(default_factory=LearnerConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    provenance: dict[str, str] = Field(default_factory=dict)
    """Where the recipe's values come from: field path (``algorithm.lr``) or section (``learner``) -> source
    (repository, file and line, or paper section). Read by ``rlvr validate --provenance``; changes nothing."""

    @field_validator("provenance")
    @classmethod
    def _known_fields(cls, v: dict[str, str]) -> dict[str, str]:
        from rlvr.config.provenance import check_paths

        check_paths(v)
        return v

    @field_validator("data")
    @classmethod
    def _known_template(cls, v: DataConfig) -> DataConfig:
        from rlvr.data.templates import TEMPLATES

        if v.template not in TEMPLATES:
            raise ValueError(f"template: unknown template {v.template!r}; valid: {', '.join(TEMPLATES)}")
        return v

    @model_validator(mode="after")
    def _batch_arithmetic(self) -> RecipeConfig:
        samples = self.rollout.prompts_per_step * self.rollout.n
        shards = self.algorithm.mini_batches * self.learner.num_ranks
        if self.rollout.prompts_per_step % self.algorithm.mini_batches:
            raise ValueError(
                f"rollout.prompts_per_step={self.rollout.prompts_per_step} is not divisible by "
                f"algorithm.mini_batches={self.algorithm.mini_batches}: mini-batches hold whole groups"
            )
        if samples % shards:
            raise ValueError(
                f"rollout.prompts_per_step * rollout.n = {samples} samples cannot be split evenly into "
                f"algorithm.mini_batches={self.algorithm.mini_batches} x learner.num_ranks="
                f"{self.learner.num_ranks}"
            )
        group_based = self.algorithm.advantage not in ("reinforce_pp", "gae", "remax")
        if group_based and self.rollout.n < 2:
            raise ValueError(
                f"rollout.n must be >= 2: the {self.algorithm.advantage!r} advantage compares responses within a group"
            )
        if self.algorithm.advantage == "passk" and self.algorithm.pass_k > self.rollout.n:
            raise ValueError(f"algorithm.pass_k={self.algorithm.pass_k} is above rollout.n={self.rollout.n}: pass@k "
                             "needs at least k responses per prompt")
        ratio = self.algorithm.overlong_buffer_ratio
        if ratio and int(ratio * self.rollout.max_new_tokens) < 1:
            raise ValueError("algorithm.overlong_buffer_ratio * rollout.max_new_tokens is below one token")
        tp = self.rollout.tensor_parallel_size
        if "tensor_parallel_size" in self.rollout.vllm:
            raise ValueError("rollout.vllm.tensor_parallel_size: set rollout.tensor_parallel_size instead "
                             "(rlvr places each engine's GPUs itself)")
        if self.resources.gpus_per_node and self.resources.gpus_per_node % tp:
            raise ValueError(f"resources.gpus_per_node={self.resources.gpus_per_node} is not a multiple of "
                             f"rollout.tensor_parallel_size={tp}: an engine cannot span nodes")
        if self.resources.gpus_per_node == 0 and tp > 1:
            raise ValueError(f"rollout.tensor_parallel_size={tp} needs GPUs, but resources.gpus_per_node is 0")
        if self.algorithm.warmup_steps and "scheduler" in self.learner.deepspeed:
            raise ValueError("algorithm.warmup_steps and learner.deepspeed.scheduler both set the learning-rate "
                             "schedule; use one of them")
        if self.rollout.max_staleness and self.resources.colocate and self.resources.gpus_per_node:
            raise ValueError(  # the same rule as rlvr.rollout.producer.check_async_layout, known here already
                f"rollout.max_staleness={self.rollout.max_staleness} with resources.colocate=true on GPUs: colocated "
                "engines and learners take turns on each GPU, so generation cannot overlap training. Set "
                "resources.colocate=false (engines on their own GPUs) or rollout.max_staleness=0")
        if self.algorithm.advantage == "remax" and self.rollout.partial:
            raise ValueError(  # rlvr.rollout.producer.Segments refuses it too
                "algorithm.advantage=remax with rollout.partial=true: ReMax's baseline is the greedy response of the "
                "policy that sampled the group, but partial rollouts sample every segment at one temperature and "
                "continue responses across weight updates, so no greedy response of one policy exists. Use "
                "rollout.partial=false (asynchronous whole responses work) or another advantage")
        self._lora_layout()
        longest = self.data.max_prompt_tokens + self.rollout.max_new_tokens
        if longest > self.learner.micro_batch_tokens:
            raise ValueError(
                f"learner.micro_batch_tokens={self.learner.micro_batch_tokens} cannot hold one sequence of "
                f"data.max_prompt_tokens + rollout.max_new_tokens = {longest} tokens"
            )
        return self

    def _lora_layout(self) -> None:
        """LoRA's sync goes through Ray's object store (an adapter into vLLM's LoRA slot, or merged weights through
        ``reload_weights``): vLLM's NCCL/IPC transfer engines write base weights only, and sleep at level 2 would
        drop the base weights that an adapter sync never resends."""
        if self.model.lora is None:
            if self.checkpoint.merge_lora:
                raise ValueError("checkpoint.merge_lora=true needs model.lora (there is no adapter to merge)")
            return
        if self.rollout.weight_transfer in ("nccl", "ipc"):
            raise ValueError(f"rollout.weight_transfer={self.rollout.weight_transfer} with model.lora: LoRA syncs "
                             "through Ray's object store; use rollout.weight_transfer=auto or reload")
        if self.rollout.sleep == "on":
            raise ValueError("rollout.sleep=on with model.lora: sleeping engines drop the base weights, which an "
                             "adapter sync never resends; use rollout.sleep=off (or auto)")
        if any(k in self.rollout.vllm for k in ("enable_lora", "max_lora_rank", "max_loras")):
            raise ValueError("rollout.vllm: enable_lora / max_lora_rank / max_loras are set by rlvr from model.lora")
