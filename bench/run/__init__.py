"""The run machinery: a suite, its pool of workers, and one job."""
