"""Test helpers shared by every package's test suite (imported only by tests)."""

from __future__ import annotations

import os


def register_hypothesis_profiles() -> None:
    """Register ``ci`` (bounded, no deadline) and ``dev`` (more examples) profiles; pick by HYPOTHESIS_PROFILE."""
    from hypothesis import HealthCheck, settings

    settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
    settings.register_profile("dev", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
