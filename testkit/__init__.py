"""Helpers shared by the tests and the benchmarks: real servers, small suites, data fixtures."""
