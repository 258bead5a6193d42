"""Test-session settings.

One torch thread: the suite's problems are small, where OpenMP threads cost more than they give,
and on a loaded 2-core machine two threads per process oversubscribe the cores badly.
"""
import torch

torch.set_num_threads(1)
