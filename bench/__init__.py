"""rnn-gradbench: how gradients behave when recurrent networks learn long-range dependencies."""

__version__ = "0.1.0"
