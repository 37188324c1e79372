"""Phase windows around faults, phase-scoped objectives and recovery time."""

import math

import pytest

from harness.faults.timeline import FaultEvent
from harness.metrics.records import ErrorClass, RequestRecord
from harness.metrics.summary import summarize
from harness.scenario.faults import FaultSpec
from harness.scenario.gates import RecoverySpec
from harness.scenario.slo import SLOSpec
from harness.slo.evaluate import SLOContext, Status, evaluate_slo
from harness.slo.phases import fault_windows, measure_phases
from harness.slo.recovery import Outcome, measure_recovery

SPEC = FaultSpec.model_validate({"at": "2s", "for": "2s", "target": "redis", "action": "kill", "name": "r"})


def event(applied: float | None = 2.0, removed: float | None = 4.0) -> FaultEvent:
    return FaultEvent(SPEC, applied_at_s=applied, removed_at_s=removed)


def record(start: float, e2e: float = 0.1, error: bool = False) -> RequestRecord:
    return RequestRecord(
        index=int(start * 100),
        kind=0,
        replica=0,
        stream=False,
        intended_start=start,
        sent=start,
        end=start + e2e,
        status=500 if error else 200,
        error_class=ErrorClass.HTTP_STATUS if error else None,
    )


def steady(start: float, end: float, rate: float = 10, **kwargs: object) -> list[RequestRecord]:
    count = round((end - start) * rate)
    return [record(start + i / rate, **kwargs) for i in range(count)]  # type: ignore[arg-type]


def test_windows_follow_actual_times() -> None:
    before, during, after = fault_windows(0, event(2.05, 4.1))
    assert (before.start_s, before.end_s) == (-math.inf, 2.05)
    assert (during.start_s, during.end_s) == (2.05, 4.1)
    assert (after.start_s, after.end_s) == (4.1, math.inf)


def test_unapplied_fault_has_no_windows() -> None:
    assert fault_windows(0, event(None, None)) == []


@pytest.mark.parametrize(
    ("start", "phase"),
    [(0.0, "before"), (1.999, "before"), (2.0, "during"), (3.999, "during"), (4.0, "after"), (9.0, "after")],
)
def test_request_phase_by_intended_start(start: float, phase: str) -> None:
    (window,) = [w for w in fault_windows(0, event()) if w.contains(start)]
    assert window.phase == phase


def test_measure_phases_splits_requests() -> None:
    records = steady(0, 2) + steady(2, 4, error=True) + steady(4, 6)
    phases = measure_phases(records, [event()], [])
    before, during, after = (phases.get(0, phase) for phase in ("before", "during", "after"))
    assert before is not None
    assert during is not None
    assert after is not None
    assert (before.requests, during.requests, after.requests) == (20, 20, 20)
    assert (before.errors, during.errors, after.errors) == (0, 20, 0)


def test_phase_objective_judges_its_phase_only() -> None:
    records = steady(0, 2) + steady(2, 4, error=True) + steady(4, 6)
    context = SLOContext(phases=measure_phases(records, [event()], []), fault_names=["r"])
    spec = SLOSpec.model_validate({"metric": "error_rate", "max": "0%", "phase": "after", "fault": "r"})
    after = evaluate_slo(spec, summarize(records), "block", 3, context=context, fault=0)
    assert after.status is Status.PASS
    assert after.samples == 20
    assert after.name == "error_rate <= 0% [after r]"
    during_spec = spec.model_copy(update={"phase": "during"})
    during = evaluate_slo(during_spec, summarize(records), "block", 3, context=context, fault=0)
    assert during.status is Status.FAIL
    assert during.observed == pytest.approx(1.0)


def test_run_objective_reports_phase_budgets() -> None:
    records = steady(0, 2) + steady(2, 4, error=True) + steady(4, 6)
    context = SLOContext(phases=measure_phases(records, [event()], []))
    spec = SLOSpec.model_validate({"metric": "error_rate", "max": "50%"})
    verdict = evaluate_slo(spec, summarize(records), "block", None, context=context)
    burns = {item.phase: item.budget.burn_rate for item in verdict.phase_budgets}
    assert burns == {"before": 0.0, "during": 2.0, "after": 0.0}
    assert verdict.burn_rate == pytest.approx(2 / 3)


def test_phase_of_unapplied_fault_is_no_data() -> None:
    context = SLOContext(phases=measure_phases(steady(0, 2), [event(None, None)], []))
    spec = SLOSpec.model_validate({"metric": "error_rate", "max": "1%", "phase": "during"})
    verdict = evaluate_slo(spec, summarize(steady(0, 2)), "block", None, context=context, fault=0)
    assert verdict.status is Status.NO_DATA
    assert verdict.note is not None


def outcomes(records: list[RequestRecord]) -> list[Outcome]:
    return sorted((Outcome.of(r) for r in records), key=lambda o: o.start_s)


def test_recovery_zero_when_healthy_at_removal() -> None:
    records = steady(0, 2) + steady(2, 4, error=True) + steady(4, 10)
    recovery = measure_recovery(0, event(), outcomes(records), RecoverySpec())
    assert recovery.recovery_time_s == 0.0
    assert recovery.band is not None
    assert recovery.band.max_error_rate == pytest.approx(0.01)
    assert recovery.band.max_e2e_p95_s == pytest.approx(0.15)


def test_recovery_time_counts_slow_tail() -> None:
    # Errors go on for 1.5 s after the removal, then latency stays high for another 1 s.
    records = (
        steady(0, 2)
        + steady(2, 4, error=True)
        + steady(4, 5.5, error=True)
        + steady(5.5, 6.5, e2e=0.4)
        + steady(6.5, 12)
    )
    recovery = measure_recovery(0, event(), outcomes(records), RecoverySpec(window="1s"))
    assert recovery.recovery_time_s == pytest.approx(2.5)


def test_recovery_tolerates_latency_within_band() -> None:
    records = steady(0, 2) + steady(2, 4, error=True) + steady(4, 10, e2e=0.14)
    recovery = measure_recovery(0, event(), outcomes(records), RecoverySpec())
    assert recovery.recovery_time_s == 0.0


def test_never_recovered_says_why() -> None:
    records = steady(0, 2) + steady(2, 10, error=True)
    recovery = measure_recovery(0, event(), outcomes(records), RecoverySpec())
    assert recovery.recovery_time_s is None
    assert recovery.measurable
    assert recovery.reason == "errors or latency stayed outside the band until the end of the load"


def test_short_after_phase_is_not_measurable() -> None:
    records = steady(0, 2) + steady(2, 4, error=True) + steady(4, 5)
    recovery = measure_recovery(0, event(), outcomes(records), RecoverySpec(window="2s"))
    assert recovery.recovery_time_s is None
    assert not recovery.measurable


def test_recovery_needs_before_phase() -> None:
    records = steady(2, 4, error=True) + steady(4, 10)
    recovery = measure_recovery(0, event(), outcomes(records), RecoverySpec())
    assert recovery.band is None
    assert recovery.reason == "the phase before the fault has fewer than 5 successes"


def test_recovery_objective_fails_when_not_recovered() -> None:
    records = steady(0, 2) + steady(2, 10, error=True)
    recovery = measure_recovery(0, event(), outcomes(records), RecoverySpec())
    spec = SLOSpec.model_validate({"metric": "recovery_time", "max": "5s"})
    context = SLOContext(recoveries=[recovery], fault_names=["r"])
    verdict = evaluate_slo(spec, summarize(records), "block", None, context=context, fault=0)
    assert verdict.status is Status.FAIL
    assert verdict.observed is None
    assert verdict.name == "recovery_time after r <= 5s"


def test_recovery_objective_compares_milliseconds() -> None:
    records = steady(0, 2) + steady(2, 4, error=True) + steady(4, 5.5, error=True) + steady(5.5, 12)
    recovery = measure_recovery(0, event(), outcomes(records), RecoverySpec(window="1s"))
    context = SLOContext(recoveries=[recovery])
    passing = SLOSpec.model_validate({"metric": "recovery_time", "max": "1.5s"})
    failing = SLOSpec.model_validate({"metric": "recovery_time", "max": "1s"})
    assert (
        evaluate_slo(passing, summarize(records), "block", None, context=context, fault=0).status
        is Status.PASS
    )
    verdict = evaluate_slo(failing, summarize(records), "block", None, context=context, fault=0)
    assert verdict.status is Status.FAIL
    assert verdict.observed == pytest.approx(1500.0)
