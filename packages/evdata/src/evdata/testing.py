"""A public testing module, like ``torch.testing``: Hypothesis profiles shared by every package's tests.

Kept in ``src`` on purpose: each package's test session installs only that package and its declared
dependencies, and every one of them has evdata, so this is the one place all suites can import from.
Nothing in evspan's own code path imports it.
"""

from __future__ import annotations

import os


def register_hypothesis_profiles() -> None:
    """Register ``ci`` (bounded, no deadline) and ``dev`` (more examples) profiles; pick by HYPOTHESIS_PROFILE."""
    from hypothesis import HealthCheck, settings

    settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
    settings.register_profile("dev", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
