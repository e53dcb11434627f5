"""Planner fixtures: a fast config, the bundled sample and its plan (built once per session)."""
import pytest

from mission_planner import PlannerConfig, load_grids, plan_patrol
from mission_planner.samples import DANYANG_GRIDS


def fast_config(**fleet) -> PlannerConfig:
    """Defaults, with a short OR-Tools cap so tests spend their time on behaviour, not search."""
    return PlannerConfig().with_overrides(solver={"time_cap_s": 0.05}, fleet=fleet)


@pytest.fixture(scope="session")
def sample_grids():
    return load_grids(DANYANG_GRIDS)


@pytest.fixture(scope="session")
def sample_plan(sample_grids):
    """The sample planned with the defaults (OR-Tools ends on its solution limit: repeatable)."""
    return plan_patrol(sample_grids, PlannerConfig())
