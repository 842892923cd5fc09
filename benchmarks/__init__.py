"""Benchmarks of speed and accuracy: the photo pipeline (``photos``), clips (``clip``), the
start's network (``regressor``) and real multi-view ground truth (``real``); one entry point,
``python -m benchmarks``. Imports ``training`` and ``inference``, never the other way round."""
