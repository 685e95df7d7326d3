"""Preloaded by the workers' fork server (``pool.WorkerPool``), and by nothing else.

The server imports what every worker needs once; each worker is forked from it with these
modules loaded. The server ends when the ``gradbench`` process that started it does.
Tearing down an interpreter that holds torch and MLflow takes about a second of garbage
collection, during which the server still holds the command's stdout: a script reading
that output would wait. Its objects are frozen at exit instead, so it ends at once.
(Workers end through ``os._exit`` and never run this.)
"""

import atexit
import gc

import bench.run.worker  # noqa: F401 - torch, Optuna, MLflow, the tasks
import bench.tracking.figures  # noqa: F401 - matplotlib, for the final runs' figures
from bench import tracking

tracking.preload()  # the store of sqlite/postgresql URIs
atexit.register(gc.freeze)
