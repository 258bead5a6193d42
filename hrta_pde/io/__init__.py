"""Files: one atomic write, run folders, checkpoints that resume exactly.

``atomic`` is the one place that writes a file; ``runs`` creates and identifies run folders and
writes their JSON; ``checkpoint`` saves and restores the full training state.
"""
