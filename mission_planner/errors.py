"""One error family for the planner: bad grids, impossible fleets, unreadable mission files.

`PlanningError.problems` lists every problem found (not just the first), each naming the
feature (its index in the FeatureCollection and its grid_id) so an operator can fix the file
in one pass.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GridProblem:
    """One thing wrong with one feature; index/grid_id are None for collection-wide problems."""

    message: str
    index: int | None = None
    grid_id: str | None = None

    def __str__(self) -> str:
        if self.index is None and self.grid_id is None:
            return self.message
        where = f"feature {self.index}" if self.index is not None else "feature"
        if self.grid_id is not None:
            where += f" (grid_id {self.grid_id!r})"
        return f"{where}: {self.message}"


class PlanningError(Exception):
    """Root of every mission_planner error."""

    def __init__(self, message: str, problems: tuple[GridProblem, ...] | list[GridProblem] = ()) -> None:
        self.problems = tuple(problems)
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)
