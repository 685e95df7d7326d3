"""The command layer: `gradbench` and its commands, on top of every stage."""
