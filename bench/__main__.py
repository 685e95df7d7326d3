"""``python -m bench`` is the ``gradbench`` command."""

from bench.cli import script

script()
