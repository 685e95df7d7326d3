"""The remedies, one module each, on two axes: regularization and clipping.

Each module declares ``REMEDY``, a ``bench.registry.Remedy``: its name, axis, label and line
style for the report, the search parameters it needs (with default ranges), and the hooks by
which it acts on the training loop (a loss penalty, an action after backward or after the
optimizer step, optimizer arguments). ``none`` on either axis is no remedy (no module).

- ``l2``: lambda * sum of squared weight-matrix entries added to the loss.
- ``norm``: the global gradient norm rescaled to tau when above it (Pascanu et al. 2013).
"""
