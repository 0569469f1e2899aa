"""The ``rlvr`` command line.

    rlvr train RECIPE.yaml [dotted.key=value ...]   run a recipe
    rlvr validate RECIPE.yaml [RECIPE.yaml ...]     check recipes without starting anything
    rlvr verify --verifier NAME --data FILE.jsonl   audit a verifier against labelled completions

``train`` exits 0 when done, 1 when a worker failed or the cluster is too small, 2 on a bad recipe or
bad data, and 75 when stopped by SIGTERM or SIGUSR1 (preemption: the run is torn down cleanly; a batch
script may requeue it).

Heavy imports (torch, Ray, vLLM, DeepSpeed) happen only inside ``train``, so ``validate`` and
configuration errors are instant.
"""

from __future__ import annotations

import argparse
import sys

from rlvr import __version__


def _parser() -> argparse.ArgumentParser:
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

    v = sub.add_parser("validate", help="validate recipes without starting any engine")
    v.add_argument("recipes", nargs="+", help="recipe YAML files")

    a = sub.add_parser(
        "verify", help="audit a verifier against labelled completions",
        description="Score labelled completions with a verifier, through the same worker pool and deadline "
                    "as training, and report agreement, false positives/negatives, timeouts, errors and "
                    "latency. FILE.jsonl: one object per line with completion, ground_truth, expected "
                    "(true/false) and optional prompt, id, finish_reason, metadata.")
    a.add_argument("--verifier", required=True,
                   help="entry-point name (e.g. math), package.module:attr or path/to/file.py:attr")
    a.add_argument("--data", required=True, help="labelled JSON-lines file")
    a.add_argument("--kwargs", default="{}", help="verifier keyword arguments as a JSON object")
    a.add_argument("--workers", type=int, default=2, help="verifier worker processes (default 2)")
    a.add_argument("--timeout", type=float, default=10.0, help="per-sample deadline in seconds (default 10)")
    a.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    a.add_argument("--cases", action="store_true", help="include every case's result")
    a.add_argument("--min-agreement", type=float, default=None,
                   help="exit 1 if agreement is below this fraction (for CI)")
    return p


def _verify(args: argparse.Namespace) -> int:
    import json

    from rlvr.verify import VerifierPoolError, VerifierSpec
    from rlvr.verify.audit import AuditError, audit, format_report, read_cases

    try:
        kwargs = json.loads(args.kwargs)
        if not isinstance(kwargs, dict):
            raise AuditError(f"--kwargs must be a JSON object, got {args.kwargs!r}")
        if args.workers < 1 or args.timeout <= 0:
            raise AuditError("--workers must be >= 1 and --timeout > 0")
        cases = read_cases(args.data)
        report = audit(cases, VerifierSpec(args.verifier, kwargs), num_workers=args.workers, timeout_s=args.timeout)
    except json.JSONDecodeError as err:
        print(f"error: --kwargs is not valid JSON: {err}", file=sys.stderr)
        return 2
    except (AuditError, ValueError, ImportError, TypeError, VerifierPoolError) as err:
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


def _validate(paths: list[str]) -> int:
    from rlvr.config import RecipeError, load_recipe

    failed = 0
    for path in paths:
        try:
            load_recipe(path)
            print(f"ok    {path}")
        except RecipeError as err:
            failed += 1
            print(f"FAIL  {err}", file=sys.stderr)
    return 1 if failed else 0


def _train(args: argparse.Namespace) -> int:
    from rlvr.config import RecipeError, dump_recipe, load_recipe

    overrides = list(args.overrides)
    if args.ray_address:
        overrides.append(f"ray.address={args.ray_address}")
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
    from rlvr.preemption import EXIT_PREEMPTED, Preempted, preemptible
    from rlvr.remote import WorkerError
    from rlvr.session import TrainingDiverged
    from rlvr.tracking import OutputError
    from rlvr.trainer import train

    try:
        with preemptible():
            run_dir = train(cfg, args.resume)
    except (WorkerError, ResourceError, CheckpointError, OutputError, TrainingDiverged) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Preempted as sig:
        print(f"preempted by {sig}: run stopped and shut down cleanly (exit {EXIT_PREEMPTED})", file=sys.stderr)
        return EXIT_PREEMPTED
    print(f"done: {run_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # Overrides may follow options (`train R.yaml --ray-address auto a.b=1`); argparse alone stops the
    # positional list at the first option, so the rest of the KEY=VALUE words are collected here.
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "train" and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "validate":
        return _validate(args.recipes)
    if args.command == "verify":
        return _verify(args)
    return _train(args)


if __name__ == "__main__":
    sys.exit(main())
