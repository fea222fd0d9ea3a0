"""The benchmark harness behind ``python -m adagrad bench``: adagrad side by side with its peers
(the reference, hand-written NumPy, torch's three Adagrad paths) and the memory ceiling, measured
interleaved in one run. See docs/speed.md for results."""
