"""Benchmarks: `python -m bench.<name>` writes JSON into bench/results/."""
