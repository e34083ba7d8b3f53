"""Benchmarks of the real skbridge daemon against the in-process fakes (see bench/README.md).

Not part of the test run: ``python -m bench`` (``--quick`` for a short look).
"""
