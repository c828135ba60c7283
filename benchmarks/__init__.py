"""Benchmarks of the plugin, run from the repository root as modules: ``python -m benchmarks.speed``."""
