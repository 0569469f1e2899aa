"""Recipe schema and loading. Imports without torch, vLLM or DeepSpeed."""

from rlvr.config.loader import RecipeError, dump_recipe, load_recipe, parse_overrides
from rlvr.config.schema import RecipeConfig

__all__ = ["RecipeConfig", "RecipeError", "dump_recipe", "load_recipe", "parse_overrides"]
