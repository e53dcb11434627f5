"""Bundled sample grids; `python -m mission_planner.samples.generate` rebuilds them."""
from pathlib import Path

DANYANG_GRIDS = Path(__file__).with_name("danyang_grids.geojson")
