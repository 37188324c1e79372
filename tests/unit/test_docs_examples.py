import re
import shutil
from pathlib import Path

import pytest

from harness.scenario.loader import load_scenario

DOCS = Path(__file__).resolve().parents[2] / "docs"
DATASETS = DOCS.parent / "scenarios" / "datasets"
YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def yaml_examples(document: str) -> list[str]:
    return YAML_BLOCK.findall((DOCS / document).read_text(encoding="utf-8"))


def test_scenario_reference_has_examples() -> None:
    assert len(yaml_examples("scenarios.md")) >= 4


@pytest.mark.parametrize("position", range(len(yaml_examples("scenarios.md"))))
def test_scenario_reference_example_loads(tmp_path: Path, position: int) -> None:
    shutil.copytree(DATASETS, tmp_path / "datasets")  # eval examples name the shipped datasets
    path = tmp_path / f"example-{position}.yaml"
    path.write_text(yaml_examples("scenarios.md")[position], encoding="utf-8")
    assert load_scenario(path).scenario.version == 1
