"""The ``rlvr`` command line.

    rlvr train RECIPE.yaml [dotted.key=value ...]   run a recipe
    rlvr validate RECIPE.yaml [...] [KEY=VALUE ...] check recipes without starting anything (--provenance: audit)
    rlvr verify --verifier NAME --data FILE.jsonl   audit a verifier against labelled completions
    rlvr eval MODEL_OR_CHECKPOINT --data FILE       pass@k / avg@n / greedy accuracy through vLLM
    rlvr samples RUN_DIR                            show a run's logged generations
    rlvr plot RUN_DIR [RUN_DIR ...]                 training curves as a PNG

``train`` exits 0 when done, 1 when a worker failed or the cluster is too small, 2 on a bad recipe or
bad data, and 75 when stopped by SIGTERM or SIGUSR1 (preemption: the run is torn down cleanly; a batch
script may requeue it). ``verify`` exits 0 when done, 1 when agreement is below ``--min-agreement``, 2 on
bad arguments or data (an unknown verifier name, a path that does not import, a malformed file) and 3 when
the verifier cannot be built or started (its constructor or start-up check raised, or a worker failed to
start).

Heavy imports (torch, Ray, vLLM, DeepSpeed) happen only inside ``train``, so ``validate`` and
configuration errors are instant.
"""

from __future__ import annotations

import argparse
import sys

from rlvr import __version__

EXIT_VERIFIER_INIT = 3
"""``rlvr verify``: the verifier cannot be built or started (1 is kept for a failed ``--min-agreement``)."""


def _parser() -> argparse.ArgumentParser:
    from rlvr.verify.pool import DEFAULT_WORKER_MEMORY_GIB  # stdlib only: no heavy import

    p = argparse.ArgumentParser(
        prog="rlvr",
        description="Post-train LLMs with RL from verifiable rewards (vLLM rollouts, DeepSpeed learners, Ray).",
    )
    p.add_argument("--version", action="version", version=f"rlvr {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="run a training recipe",
                       description="Run a recipe. Overrides are dotted keys, values parsed as YAML, "
                                   "e.g. algorithm.lr=1e-6 rollout.n=16 'data.train=[{path: a.jsonl}]'. "
                                   "Exit status: 0 done, 1 a worker failed or the cluster is too small, "
                                   "2 bad recipe or data, 75 stopped by SIGTERM/SIGUSR1 (preemption).")
    t.add_argument("recipe", help="recipe YAML file (see recipes/)")
    t.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides of recipe fields")
    t.add_argument("--ray-address", default=None,
                   help="attach to this Ray cluster (also RAY_ADDRESS; default: start a local instance)")
    t.add_argument("--resume", metavar="auto|PATH", default=None,
                   help="continue from a checkpoint: PATH (a checkpoint or a run directory: its latest) or auto "
                        "(run.output_dir/run.name's latest; a fresh start there if it has none)")
    t.add_argument("--print-config", action="store_true", help="print the resolved recipe and exit")
    t.add_argument("--dry-run", action="store_true",
                   help="resolve the recipe, read and check the data (counts, drops, a templated example prompt) "
                        "and plan the placement, then exit without starting Ray, an engine or a learner")
    t.add_argument("--verbose", action="store_true",
                   help="also show the workers' own output (vLLM, DeepSpeed, Ray) on the console; it always goes "
                        "to RUN/logs/<role>-<i>.log (logging.verbose=true)")

    v = sub.add_parser("validate", help="validate recipes without starting any engine",
                       description="Validate recipes. KEY=VALUE words are dotted overrides, applied to every recipe "
                                   "as `rlvr train` applies them.")
    v.add_argument("recipes", nargs="+", metavar="RECIPE|KEY=VALUE", help="recipe YAML files, then overrides")
    v.add_argument("--plan", action="store_true",
                   help="also print each recipe's worker layout for its resources.gpus_per_node (no cluster needed)")
    v.add_argument("--provenance", action="store_true",
                   help="also print every field the recipe or its algorithm preset sets, with its source from the "
                        "recipe's provenance: mapping, and the fields without one")

    a = sub.add_parser(
        "verify", help="audit a verifier against labelled completions",
        description="Score labelled completions with a verifier, through the same worker pool and deadline "
                    "as training, and report agreement, false positives/negatives, timeouts, errors and "
                    "latency. FILE.jsonl: one object per line with completion, ground_truth, expected "
                    "(true/false) and optional prompt, id, finish_reason, metadata. Exit status: 0 done, "
                    "1 agreement below --min-agreement, 2 bad arguments or data (unknown verifier name, "
                    f"import path that does not import, malformed file), {EXIT_VERIFIER_INIT} the verifier "
                    "cannot be built or started (its constructor or start-up check raised, a worker failed "
                    "to start).")
    a.add_argument("--verifier", required=True,
                   help="entry-point name (e.g. math), package.module:attr or path/to/file.py:attr")
    a.add_argument("--data", required=True, help="labelled JSON-lines file")
    a.add_argument("--kwargs", default="{}", help="verifier keyword arguments as a JSON object")
    a.add_argument("--workers", type=int, default=2, help="verifier worker processes (default 2)")
    a.add_argument("--timeout", type=float, default=10.0, help="per-sample deadline in seconds (default 10)")
    a.add_argument("--worker-memory-gib", type=float, default=DEFAULT_WORKER_MEMORY_GIB, metavar="GIB",
                   help="address-space cap of each worker, as reward.worker_memory_gib "
                        f"(default {DEFAULT_WORKER_MEMORY_GIB:g}; 0: no cap)")
    a.add_argument("--worker-log", default=None, metavar="FILE",
                   help="append the workers' stdout and stderr (a verifier's prints) to FILE (default: discarded)")
    a.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    a.add_argument("--cases", action="store_true", help="include every case's result")
    a.add_argument("--min-agreement", type=float, default=None,
                   help="exit 1 if agreement is below this fraction (for CI)")
    e = sub.add_parser(
        "eval", help="pass@k, avg@n or greedy accuracy of a model or checkpoint through vLLM",
        description="Evaluate MODEL_OR_CHECKPOINT (a Hugging Face directory, a peft LoRA adapter directory, served "
                    "on its base model, an rlvr checkpoint or a run directory) on JSON-lines data with vLLM and the "
                    "verifiers: pass@k (unbiased estimator) for each k, avg@n, per data set. A checkpoint's run "
                    "supplies template, columns and verifier.")
    e.add_argument("model", metavar="MODEL_OR_CHECKPOINT")
    e.add_argument("--data", action="append", required=True, help="data file (.jsonl/.json/.parquet); repeatable")
    e.add_argument("--n", type=int, default=1, help="samples per prompt (default 1)")
    e.add_argument("--k", default=None, help="comma-separated k for pass@k (default 1, 2, 4, ... n)")
    e.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature (default 0, greedy, for --n 1; 1.0 otherwise)")
    e.add_argument("--top-p", type=float, default=1.0)
    e.add_argument("--max-new-tokens", type=int, default=None)
    e.add_argument("--template", default=None, help="prompt template (default: the run's, else raw)")
    e.add_argument("--prompt-key", default=None)
    e.add_argument("--answer-key", default=None)
    e.add_argument("--verifier", default=None, help="verifier (default: the run's, else exact_int)")
    e.add_argument("--verifier-kwargs", default="{}", help="verifier keyword arguments as JSON")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--dtype", default="auto")
    e.add_argument("--out", default=None, help="also write the JSON result to this file")
    e.add_argument("--samples-out", default=None, help="write every sample with its verdict to this JSON-lines file")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")

    sm = sub.add_parser("samples", help="show the generations a run logged (samples.jsonl)")
    sm.add_argument("run_dir", metavar="RUN_DIR")
    sm.add_argument("--step", type=int, default=None, help="only this step")
    sm.add_argument("--last", action="store_true", help="only the last logged step")
    sm.add_argument("--min-reward", type=float, default=None)
    sm.add_argument("--max-reward", type=float, default=None)
    sm.add_argument("--correct", dest="correct", action="store_true", default=None, help="only correct ones")
    sm.add_argument("--wrong", dest="correct", action="store_false", help="only wrong ones")
    sm.add_argument("--grep", default=None, help="only records whose prompt or response contains this text")
    sm.add_argument("--limit", type=int, default=20, help="at most this many (default 20; 0: all)")
    sm.add_argument("--width", type=int, default=2000, help="cut longer texts in the middle (0: never)")
    sm.add_argument("--json", action="store_true", help="print the records as JSON lines")

    pl = sub.add_parser("plot", help="plot runs' curves (reward, accuracy, length, entropy, KL, timings) to a PNG")
    pl.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    pl.add_argument("--out", default="rlvr_plot.png", help="PNG file (default rlvr_plot.png)")
    pl.add_argument("--metrics", default=None,
                    help="comma-separated metric keys (default: reward, accuracy, length, entropy, KL, step time, "
                         "held-out accuracy)")
    return p


def _eval(args: argparse.Namespace) -> int:
    import json

    from rlvr.data.dataset import DataError
    from rlvr.eval_model import EvalError, EvalSettings, format_table, run_eval, write_json

    try:
        kwargs = json.loads(args.verifier_kwargs)
        ks = [int(k) for k in args.k.split(",")] if args.k else None
        if args.n < 1:
            raise EvalError("--n must be >= 1")
        temperature = args.temperature if args.temperature is not None else (0.0 if args.n == 1 else 1.0)
        settings = EvalSettings(
            data=args.data, n=args.n, temperature=temperature, top_p=args.top_p, ks=ks,
            max_new_tokens=args.max_new_tokens, template=args.template, prompt_key=args.prompt_key,
            answer_key=args.answer_key, verifier=args.verifier, verifier_kwargs=kwargs, seed=args.seed,
            dtype=args.dtype, samples_out=args.samples_out)
        result = run_eval(args.model, settings)
    except (EvalError, DataError, json.JSONDecodeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.out:
        write_json(result, args.out)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


def _samples(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from rlvr.samples import SamplesError, read_samples, render, select

    try:
        rows = select(read_samples(Path(args.run_dir)), step=args.step, last=args.last, min_reward=args.min_reward,
                      max_reward=args.max_reward, correct=args.correct, contains=args.grep)
    except SamplesError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    shown = rows if args.limit == 0 else rows[: args.limit]
    for r in shown:
        print(json.dumps(r) if args.json else render(r, args.width) + "\n")
    if not args.json:
        print(f"{len(shown)} of {len(rows)} matching record(s)", file=sys.stderr)
    return 0


def _plot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rlvr.plot import PlotError, plot_runs

    try:
        metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
        plot_runs([Path(d) for d in args.run_dirs], metrics, Path(args.out))
    except PlotError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    import json

    from rlvr.verify import VerifierInitError, VerifierPoolError, VerifierSpec
    from rlvr.verify.audit import AuditError, audit, format_report, read_cases

    try:
        kwargs = json.loads(args.kwargs)
        if not isinstance(kwargs, dict):
            raise AuditError(f"--kwargs must be a JSON object, got {args.kwargs!r}")
        if args.workers < 1 or args.timeout <= 0 or args.worker_memory_gib < 0:
            raise AuditError("--workers must be >= 1, --timeout > 0 and --worker-memory-gib >= 0")
        cases = read_cases(args.data)
        report = audit(cases, VerifierSpec(args.verifier, kwargs), num_workers=args.workers, timeout_s=args.timeout,
                       worker_memory_gib=args.worker_memory_gib or None, log_path=args.worker_log)
    except json.JSONDecodeError as err:
        print(f"error: --kwargs is not valid JSON: {err}", file=sys.stderr)
        return 2
    except (VerifierInitError, VerifierPoolError) as err:  # before ValueError: VerifierInitError is one
        print(f"error: {err}", file=sys.stderr)
        return EXIT_VERIFIER_INIT
    except (AuditError, ValueError, ImportError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.cases:
        report.pop("cases")
    if args.json:
        print(json.dumps(report))
    else:
        print(format_report(report, args.verifier, show_cases=args.cases))
    if args.min_agreement is not None and report["agreement"] < args.min_agreement:
        print(f"agreement {report['agreement']:.3f} is below --min-agreement {args.min_agreement}", file=sys.stderr)
        return 1
    return 0


def _split_overrides(words: list[str]) -> tuple[list[str], list[str]]:
    """(recipe files, KEY=VALUE overrides): a word with ``=`` that is not an existing file is an override."""
    import os

    overrides = [w for w in words if "=" in w and not os.path.exists(w)]
    return [w for w in words if w not in overrides], overrides


def _validate(words: list[str], plan: bool = False, provenance: bool = False) -> int:
    from rlvr.config import RecipeError, load_recipe
    from rlvr.config.provenance import audit, format_audit
    from rlvr.placement import ResourceError, plan_layout

    paths, overrides = _split_overrides(words)
    if not paths:
        print("error: no recipe file given (KEY=VALUE words are overrides)", file=sys.stderr)
        return 2
    failed = 0
    for path in paths:
        try:
            cfg = load_recipe(path, overrides)
            print(f"ok    {path}")
            if provenance:
                print(format_audit(path, audit(path)[1]))
            if plan:
                layout = plan_layout(cfg, cfg.algorithm.advantage == "gae", cfg.resources.gpus_per_node or 0)
                print(f"      {layout.summary}")
        except (RecipeError, ResourceError) as err:
            failed += 1
            print(f"FAIL  {path}: {err}" if isinstance(err, ResourceError) else f"FAIL  {err}", file=sys.stderr)
    return 1 if failed else 0


def _train(args: argparse.Namespace) -> int:
    from rlvr.config import RecipeError, dump_recipe, load_recipe

    overrides = list(args.overrides)
    if args.ray_address:
        overrides.append(f"ray.address={args.ray_address}")
    if args.verbose:
        overrides.append("logging.verbose=true")
    try:
        cfg = load_recipe(args.recipe, overrides)
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.print_config:
        print(dump_recipe(cfg), end="")
        return 0
    from rlvr.checkpoint import CheckpointError
    from rlvr.data.dataset import DataError
    from rlvr.placement import ResourceError
    from rlvr.verify import VerifierInitError

    if args.dry_run:
        from rlvr.dry_run import dry_run

        try:
            dry_run(cfg, args.resume)
        except (DataError, VerifierInitError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except ResourceError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        return 0
    from rlvr.loggers import LoggerError
    from rlvr.preemption import EXIT_PREEMPTED, Preempted, preemptible
    from rlvr.remote import WorkerError
    from rlvr.rollout.sampling import SignalExhausted
    from rlvr.session import TrainingDiverged
    from rlvr.tracking import OutputError
    from rlvr.trainer import train
    from rlvr.verify import VerifierPoolError
    from rlvr.weight_sync import WeightSyncError

    try:
        with preemptible():
            run_dir = train(cfg, args.resume)
    except (WorkerError, ResourceError, CheckpointError, OutputError, TrainingDiverged, LoggerError,
            VerifierPoolError, SignalExhausted, WeightSyncError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (DataError, VerifierInitError) as err:  # a verifier that cannot be built: fixed in the recipe
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Preempted as sig:
        print(f"preempted by {sig}: run stopped and shut down cleanly (exit {EXIT_PREEMPTED})", file=sys.stderr)
        return EXIT_PREEMPTED
    print(f"look at it: rlvr plot {run_dir} --out {run_dir}/curves.png; rlvr samples {run_dir} --last; "
          f"rlvr eval {run_dir} --data FILE.jsonl")
    print(f"done: {run_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # Overrides may follow options (`train R.yaml --ray-address auto a.b=1`); argparse alone stops the
    # positional list at the first option, so the rest of the KEY=VALUE words are collected here.
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "train" and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides += extra
    elif extra and args.command == "validate" and all("=" in e and not e.startswith("-") for e in extra):
        args.recipes += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "validate":
        return _validate(args.recipes, args.plan, args.provenance)
    if args.command == "verify":
        return _verify(args)
    if args.command == "eval":
        return _eval(args)
    if args.command == "samples":
        return _samples(args)
    if args.command == "plot":
        return _plot(args)
    return _train(args)


if __name__ == "__main__":
    sys.exit(main())
