"""Algorithm presets: each module is one published algorithm expressed as defaults for the parts
in `rlvr.config.schema.AlgorithmConfig` (advantage estimator, ratio level, clipping, aggregation,
KL placement, group hooks). A recipe picks one with ``algorithm.name`` and may override any part;
fields the recipe sets win over the preset. These modules are torch-free: the config validates
against them before anything starts.
"""
