"""Typed model of a scenario file (schema version 1).

Every model rejects unknown keys, so a misspelt field is an error instead of a setting that
silently keeps its default. Field descriptions end up in the JSON Schema that editors use.
Checks that span sections (a request for a model the stack does not serve, a TTFT objective
on a load without streaming) are in ``consistency_problems``, which the loader runs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.scenario.base import GateMode, Name, StrictModel
from harness.scenario.checks import (
    AdmittedCheck,
    CacheIsolationCheck,
    CheckSpec,
    RateLimitHeadersCheck,
    RetryAfterCheck,
)
from harness.scenario.evals import EvalSpec
from harness.scenario.faults import TARGET_PATTERN, FaultSpec
from harness.scenario.gates import BaselineSpec, CostSpec, RecoverySpec
from harness.scenario.load import LoadSpec, Message, RequestSpec
from harness.scenario.slo import AnySLO, OpenSLOSpec, SLOSpec, parse_percentile
from harness.scenario.stack import DEFAULT_MODEL_ALIAS, StackSpec, UpstreamSpec
from harness.scenario.units import format_duration

SCENARIO_VERSION = 1

__all__ = [
    "DEFAULT_MODEL_ALIAS",
    "SCENARIO_VERSION",
    "AnySLO",
    "GateMode",
    "LoadSpec",
    "Message",
    "OpenSLOSpec",
    "RequestSpec",
    "SLOSpec",
    "Scenario",
    "StackSpec",
    "UpstreamSpec",
    "parse_percentile",
]

Location = tuple[str | int, ...]
STREAM_METRICS = ("ttft", "itl", "tpot")
"""Metrics measured only on streaming requests."""


class Scenario(StrictModel):
    """A scenario file: the stack to start, the load to send and the SLOs that gate the result."""

    version: Literal[1] = Field(description="Scenario schema version.")
    name: Name = Field(description="Unique name; reports and pytest test ids use it.")
    description: str = ""
    stack: StackSpec = Field(default_factory=StackSpec)
    load: LoadSpec
    slo: list[AnySLO] = Field(
        default_factory=list, description="Objectives; a scenario needs at least one objective or check."
    )
    faults: list[FaultSpec] = Field(default_factory=list, description="Process faults during the load.")
    checks: list[CheckSpec] = Field(default_factory=list, description="Rules about individual responses.")
    cost: CostSpec | None = Field(None, description="Model prices and limits on the run's token cost.")
    baseline: BaselineSpec = Field(
        default_factory=BaselineSpec, description="How the run is compared with a --baseline run."
    )
    recovery: RecoverySpec = Field(
        default_factory=RecoverySpec, description="How recovery time after each fault is measured."
    )
    eval: EvalSpec | None = Field(
        None, description="Datasets sent through the gateway after the load, scored and gated."
    )
    gate: GateMode = Field(
        "block", description="block fails the run when an SLO fails; warn only reports it."
    )

    def fault_index(self, reference: int | str | None) -> int | None:
        """Return the position of the fault an objective names, or None when it names none that exists."""
        if reference is None:
            return 0 if len(self.faults) == 1 else None
        if isinstance(reference, int):
            return reference if 0 <= reference < len(self.faults) else None
        names = [fault.name for fault in self.faults]
        return names.index(reference) if reference in names else None

    def cost_objectives(self) -> list[tuple[SLOSpec, Location]]:
        """Return the cost section's limits as objectives, each with the location of its key."""
        cost = self.cost
        if cost is None:
            return []
        limits = {
            "cost_per_1k_requests": ("max_usd_per_1k_requests", cost.max_usd_per_1k_requests),
            "cost_total": ("max_usd_total", cost.max_usd_total),
        }
        return [
            (SLOSpec.model_validate({"metric": metric, "max": limit, "gate": cost.gate}), ("cost", key))
            for metric, (key, limit) in limits.items()
            if limit is not None
        ]

    def with_duration_scale(self, factor: float) -> Scenario:
        """Return a copy whose durations are multiplied by ``factor`` (thresholds are left alone)."""
        if factor == 1:
            return self
        faults = [fault.scaled(factor) for fault in self.faults]
        return self.model_copy(update={"load": self.load.scaled(factor), "faults": faults})

    def consistency_problems(self) -> list[tuple[Location, str]]:
        """Return problems that span sections, each with the location of the field at fault."""
        problems: list[tuple[Location, str]] = []
        if not self.slo and not self.checks and self.eval is None:
            message = "a scenario needs at least one SLO or check, or an eval; with none it could never fail"
            problems.append((("slo",), message))
        problems += self._request_problems()
        problems += self._tenant_limit_problems()
        problems += self._fault_problems()
        problems += self._check_problems()
        problems += self._slo_problems()
        problems += self._eval_problems()
        return problems

    def _eval_problems(self) -> list[tuple[Location, str]]:
        if self.eval is None:
            return []
        problems: list[tuple[Location, str]] = []
        served = self.stack.model_routes()
        models: list[tuple[Location, str | None]] = [(("eval", "model"), self.eval.model)]
        for _, dataset_position, scorer_position in self.eval.scorer_names():
            scorer = self.eval.datasets[dataset_position].scorers[scorer_position]
            if scorer.type == "llm_judge":
                where: Location = ("eval", "datasets", dataset_position, "scorers", scorer_position, "model")
                models.append((where, scorer.model))
        for where, model in models:
            if model is not None and model not in served:
                message = f"model {model!r} is not served by this stack; served models: {', '.join(served)}"
                problems.append((where, message))
        tenant = self.eval.tenant
        if tenant is not None and tenant not in self.stack.tenants:
            message = (
                f"tenant {tenant!r} is not in stack.tenants; defined tenants: {', '.join(self.stack.tenants)}"
            )
            problems.append((("eval", "tenant"), message))
        return problems

    def _phase_problems(self) -> list[tuple[Location, str]]:
        problems: list[tuple[Location, str]] = []
        for position, slo in enumerate(self.slo):
            needs_fault = slo.phase != "run" or slo.metric == "recovery_time"
            if slo.metric == "recovery_time" and slo.phase != "run":
                message = "recovery_time is measured after its fault ends; remove phase and name the fault"
                problems.append((("slo", position, "phase"), message))
            if not needs_fault:
                if slo.fault is not None:
                    message = "fault applies to a phase (before, during, after) or to recovery_time"
                    problems.append((("slo", position, "fault"), message))
                continue
            if not self.faults:
                what = "recovery_time" if slo.metric == "recovery_time" else f"phase {slo.phase!r}"
                problems.append((("slo", position), f"{what} needs a fault, but this scenario has none"))
            elif self.fault_index(slo.fault) is None:
                where: Location = ("slo", position) if slo.fault is None else ("slo", position, "fault")
                problems.append((where, self._fault_reference_problem(slo.fault)))
        return problems

    def _fault_reference_problem(self, reference: int | str | None) -> str:
        named = [fault.name for fault in self.faults if fault.name]
        choices = f"a position from 0 to {len(self.faults) - 1}"
        if named:
            choices += f" or a name ({', '.join(named)})"
        if reference is None:
            return f"this scenario has {len(self.faults)} faults; add fault: with {choices}"
        return f"no fault {reference!r}; use {choices}"

    def _slo_problems(self) -> list[tuple[Location, str]]:
        problems: list[tuple[Location, str]] = self._phase_problems()
        for position, slo in enumerate(self.slo):
            where: Location = ("slo", position, "metric")
            if isinstance(slo, OpenSLOSpec):
                where = ("slo", position, "thresholdMetric" if slo.thresholdMetric else "ratioMetric")
            if slo.metric in STREAM_METRICS and not self.load.stream:
                message = (
                    f"a {slo.metric} objective needs streaming requests, but this load sets stream: false"
                )
                problems.append((where, message))
            if slo.metric == "capacity" and self.load.sweep is None:
                problems.append((where, "a capacity objective needs a sweep: add load.sweep"))
        if self.load.sweep is not None and all(slo.metric == "capacity" for slo in self.slo):
            message = "a sweep needs an objective other than capacity, or every rate would pass"
            problems.append((("slo",), message))
        return problems

    def _request_problems(self) -> list[tuple[Location, str]]:
        problems: list[tuple[Location, str]] = []
        served = ", ".join(self.stack.model_routes())
        tenants = ", ".join(self.stack.tenants)
        for position, request in enumerate(self.load.requests):
            if request.model is not None and request.model not in self.stack.model_routes():
                message = f"model {request.model!r} is not served by this stack; served models: {served}"
                problems.append((("load", "requests", position, "model"), message))
            if request.tenant is not None and request.tenant not in self.stack.tenants:
                message = f"tenant {request.tenant!r} is not in stack.tenants; defined tenants: {tenants}"
                problems.append((("load", "requests", position, "tenant"), message))
        return problems

    def _fault_problems(self) -> list[tuple[Location, str]]:
        problems: list[tuple[Location, str]] = []
        if self.faults and self.load.sweep is not None:
            problems.append(
                (("faults",), "faults cannot be combined with a sweep, whose trials repeat the load")
            )
        names = [fault.name for fault in self.faults if fault.name is not None]
        for position, fault in enumerate(self.faults):
            if fault.name is not None and names.count(fault.name) > 1:
                message = f"fault name {fault.name!r} is used more than once; fault names must be unique"
                problems.append((("faults", position, "name"), message))
            match = TARGET_PATTERN.match(fault.target)
            assert match is not None
            replica, upstream = match.group(2), match.group(3)
            if replica is not None and fault.toxic is not None and not self.stack.proxy_gateways:
                message = "a network fault on a gateway replica needs stack.proxy_gateways: true"
                problems.append((("faults", position, "target"), message))
            if replica is not None and int(replica) >= self.stack.replicas:
                message = f"this stack has {self.stack.replicas} gateway replica(s), numbered from 0"
                problems.append((("faults", position, "target"), message))
            if upstream is not None and upstream not in self.stack.upstreams:
                message = f"no upstream {upstream!r}; upstreams: {', '.join(self.stack.upstreams)}"
                problems.append((("faults", position, "target"), message))
            if fault.at >= self.load.schedule_s:
                message = f"the fault starts at {format_duration(fault.at)}, when the load has already ended"
                problems.append((("faults", position, "at"), message))
        return problems

    def _check_problems(self) -> list[tuple[Location, str]]:
        problems: list[tuple[Location, str]] = []
        if self.checks and (self.load.sweep is not None or self.load.engine == "locust"):
            message = "checks need a single run of the built-in engine: remove load.sweep and engine: locust"
            problems.append((("checks",), message))
        for position, check in enumerate(self.checks):
            if isinstance(check, AdmittedCheck) and check.tenant not in self.stack.tenants:
                message = f"tenant {check.tenant!r} is not in stack.tenants: {', '.join(self.stack.tenants)}"
                problems.append((("checks", position, "tenant"), message))
            if isinstance(check, CacheIsolationCheck) and not self.stack.cache.enabled:
                message = "cache_isolation needs stack.cache.enabled: true"
                problems.append((("checks", position, "type"), message))
            if isinstance(check, RateLimitHeadersCheck | RetryAfterCheck) and not self._any_limits():
                message = f"{check.type} needs a tenant with limits in stack.tenants"
                problems.append((("checks", position, "type"), message))
        return problems

    def _any_limits(self) -> bool:
        return any(
            tenant.limits.model_dump(exclude_none=True, exclude_defaults=True)
            for tenant in self.stack.tenants.values()
        )

    def _tenant_limit_problems(self) -> list[tuple[Location, str]]:
        problems: list[tuple[Location, str]] = []
        served = self.stack.model_routes()
        for tenant, settings in self.stack.tenants.items():
            for model in settings.limits.models:
                if model not in served:
                    message = (
                        f"limits name model {model!r}, which this stack does not serve: {', '.join(served)}"
                    )
                    problems.append((("stack", "tenants", tenant, "limits", "models", model), message))
        return problems
