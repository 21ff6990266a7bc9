"""Benchmarks of the grader and the reference model (run `python -m bench.bench`; not a test)."""
