"""``python -m bench`` is the ``gradbench`` command."""

from bench.cli.main import script

script()
