"""The Flask app a user migrates from: the benchmark baseline, not part of the package."""
