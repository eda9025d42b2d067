"""The dashboard test's Chromium (skipped outside CI without it, required in CI)."""

from tests.measurement.test_dashboard import chromium  # noqa: F401 (a fixture, used by name)
