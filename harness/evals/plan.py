"""An eval section made ready to run: its datasets read and its scorers built, at load time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.evals.dataset import DatasetError, EvalItem, load_dataset
from harness.evals.registry import ScorerBuildError, ScorerRegistry, build_scorer
from harness.evals.scoring import Scorer
from harness.scenario.errors import Problem
from harness.scenario.evals import DatasetSpec, EvalSpec

Location = tuple[str | int, ...]


@dataclass(frozen=True)
class PlannedDataset:
    spec: DatasetSpec
    path: Path
    items: list[EvalItem]
    scorers: list[Scorer]


@dataclass(frozen=True)
class EvalPlan:
    spec: EvalSpec
    datasets: list[PlannedDataset]

    def scorers(self) -> list[tuple[PlannedDataset, Scorer, int]]:
        """Return every scorer with its dataset and its position in that dataset's scorers."""
        return [
            (dataset, scorer, position)
            for dataset in self.datasets
            for position, scorer in enumerate(dataset.scorers)
        ]


class PlanProblems(Exception):
    """Problems found while planning: dataset problems carry their place, scorer problems a location."""

    def __init__(self, dataset_problems: list[Problem], scorer_problems: list[tuple[Location, str]]) -> None:
        super().__init__(f"{len(dataset_problems) + len(scorer_problems)} eval problem(s)")
        self.dataset_problems = dataset_problems
        self.scorer_problems = scorer_problems


def plan_eval(spec: EvalSpec, base_dir: Path, registry: ScorerRegistry) -> EvalPlan:
    """Read every dataset relative to ``base_dir`` and build every scorer; raise PlanProblems."""
    dataset_problems: list[Problem] = []
    scorer_problems: list[tuple[Location, str]] = []
    names = {(d, s): name for name, d, s in spec.scorer_names()}
    repeated = {name for name in names.values() if list(names.values()).count(name) > 1}
    planned = []
    for dataset_position, dataset in enumerate(spec.datasets):
        path = base_dir / dataset.path
        items: list[EvalItem] = []
        try:
            items = load_dataset(path)
        except DatasetError as exc:
            dataset_problems.append(exc.problem)
        scorers = []
        for scorer_position, settings in enumerate(dataset.scorers):
            location: Location = ("eval", "datasets", dataset_position, "scorers", scorer_position)
            name = names[(dataset_position, scorer_position)]
            if name in repeated:
                scorer_problems.append((location, f"scorer name {name!r} is used more than once; set name:"))
                continue
            try:
                scorers.append(build_scorer(settings, name, base_dir, registry))
            except ScorerBuildError as exc:
                where = (*location, exc.field) if exc.field else location
                scorer_problems.append((where, str(exc)))
        planned.append(PlannedDataset(dataset, path, items, scorers))
    if dataset_problems or scorer_problems:
        raise PlanProblems(dataset_problems, scorer_problems)
    return EvalPlan(spec, planned)
