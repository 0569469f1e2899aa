"""The ``rlvr`` command line.

    rlvr train RECIPE.yaml [dotted.key=value ...]   run a recipe
    rlvr validate RECIPE.yaml [RECIPE.yaml ...]     check recipes without starting anything

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
                                   "e.g. algorithm.lr=1e-6 rollout.n=16 'data.train=[{path: a.jsonl}]'.")
    t.add_argument("recipe", help="recipe YAML file (see recipes/)")
    t.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides of recipe fields")
    t.add_argument("--ray-address", default=None,
                   help="attach to this Ray cluster (also RAY_ADDRESS; default: start a local instance)")
    t.add_argument("--print-config", action="store_true", help="print the resolved recipe and exit")

    v = sub.add_parser("validate", help="validate recipes without starting any engine")
    v.add_argument("recipes", nargs="+", help="recipe YAML files")
    return p


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
    from rlvr.remote import WorkerError
    from rlvr.trainer import train

    try:
        run_dir = train(cfg)
    except WorkerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"done: {run_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "validate":
        return _validate(args.recipes)
    return _train(args)


if __name__ == "__main__":
    sys.exit(main())
