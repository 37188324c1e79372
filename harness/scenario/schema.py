"""JSON Schema of the scenario format, for editor completion and validation outside slogate."""

from __future__ import annotations

from typing import Any

from harness.scenario.model import Scenario

SCHEMA_ID = "https://slogate.dev/schemas/scenario-v1.json"


def scenario_json_schema() -> dict[str, Any]:
    schema = Scenario.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}
