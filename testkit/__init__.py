"""Helpers shared by the tests and the benchmarks, the one place for them (no test module
imports another): ``servers`` (real PostgreSQL and MLflow servers), ``processes`` (commands
started, read line by line, frozen, signalled and checked gone), ``suites`` (a small suite
and an Optuna journal with a study), ``har`` (a tiny UCI HAR data set in the original
layout), ``waiting`` (polling for a condition, failing with the last error seen), ``tiny``
(tiny float64 tasks and models for the exact-value tests)."""
