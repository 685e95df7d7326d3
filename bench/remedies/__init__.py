"""The remedies, one module each, on two axes: regularization and clipping.

Each module declares ``REMEDY``, a ``bench.registry.Remedy``: its name, axis, label, line
style or marker for the report, the search parameters it needs (with default ranges), and
the hooks by which it acts on the training loop (a loss penalty, an action after backward or
after the optimizer step, optimizer arguments). ``none`` on either axis is no remedy (no
module). ``W_hh`` is the recurrent matrix, the lecture's ``W_r`` (all its gate blocks).

Regularization:

- ``l2``: ``lambda * ||W_hh||_F^2`` added to the loss;
- ``l2-all``: the same penalty over every weight matrix (input, recurrent, head);
- ``decay``: decoupled weight decay, ``W_hh <- W_hh - lr * lambda * W_hh`` after each step
  (the AdamW form; Loshchilov & Hutter 2019).

Clipping:

- ``norm``: the global gradient norm rescaled to tau when above it (Pascanu et al. 2013);
- ``value``: every gradient entry clamped to [-tau, tau];
- ``weight``: after each step, every gate block of W_hh rescaled to spectral norm <= tau
  (weight clipping, the lecture's remedy for the ``W_r^t`` factor).
"""
