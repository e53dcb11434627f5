"""Shared test fixtures. Package-specific fixtures live in tests/fixtures/<name>.py plugins."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytest_plugins = [
    "tests.fixtures.ports",
    "tests.fixtures.broker",
    "tests.fixtures.vehicles",
]
