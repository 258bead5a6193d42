"""The error of a bad problem definition (file, dict, domain or sampling request)."""
from __future__ import annotations

__all__ = ["ProblemError"]


class ProblemError(ValueError):
    """One-line message naming the bad value or key and the fix.

    Example: ``problem.toml: unknown key 'radus' in [domain]; allowed keys: type, center, radius``.
    """
