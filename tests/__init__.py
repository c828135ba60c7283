"""The test suite, a package so that its modules import the naive reference model as ``tests.naive_universeg``."""
