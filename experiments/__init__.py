"""Research scripts: development experiments and diagnostics. They call the library and are
run from the repository root as modules, e.g. ``python -m experiments.experiment_postprocess``."""
