"""Toxiproxy's toxic types with their attributes and units, and the toxics configured on a proxy.

Times are in milliseconds except the slicer's ``delay`` (microseconds); ``rate`` is in KB/s with
1 KB = 1000 bytes, as Toxiproxy 2.x computes it.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any

from pydantic import Field, ValidationError

from harness.faults.models import ApiError, Direction, ToxicFields, describe_validation_error
from harness.faults.stage import Chunk, EndOfStream, Stage, ToxicAttributes

MS = 1e-3
US = 1e-6
BANDWIDTH_STEP_S = 0.01
"""The bandwidth toxic sends at most this much time's worth of bytes at once, so its output is smooth."""


class LatencyAttributes(ToxicAttributes):
    latency: int = Field(0, ge=0, description="ms")
    jitter: int = Field(0, ge=0, description="ms")


class LatencyStage(Stage[LatencyAttributes]):
    """Delay every chunk by ``latency`` ± ``jitter``, counted from the chunk's arrival at the proxy.

    Counting from the arrival keeps the data flowing at full speed: chunks queue behind each other
    but none waits for the delay of the one before it. Stacked latency toxics add up, because each
    moves the chunk's timestamp forward by the delay it applied.
    """

    type_name = "latency"
    attributes_model = LatencyAttributes

    async def run(self) -> None:
        while True:
            item = await self.receive()
            if isinstance(item, EndOfStream):
                self.send(item)
                return
            due = item.timestamp + self._delay_s()
            await self.sleep_until(due)
            item.timestamp = due
            self.send(item)

    def _delay_s(self) -> float:
        jitter = self.attributes.jitter
        offset = self.host.rng.uniform(-jitter, jitter) if jitter else 0.0
        return max(0.0, self.attributes.latency + offset) * MS


class BandwidthAttributes(ToxicAttributes):
    rate: int = Field(0, ge=0, description="KB/s, 0 for no limit")


class BandwidthStage(Stage[BandwidthAttributes]):
    """Pace the bytes at ``rate`` KB/s; time spent idle earns no credit for a later burst.

    The pacing clock ``ready_at`` only moves to the present after the stage waited for input, so
    timers that fire late do not add up while data is queued.
    """

    type_name = "bandwidth"
    attributes_model = BandwidthAttributes

    async def run(self) -> None:
        ready_at = self.host.now()
        while True:
            idle = not self.inbox
            item = await self.receive()
            if idle:
                ready_at = max(ready_at, self.host.now())
            if isinstance(item, EndOfStream):
                self.send(item)
                return
            if self.attributes.rate == 0:
                self.send(item)
                continue
            bytes_per_s = self.attributes.rate * 1000
            step = max(1, int(bytes_per_s * BANDWIDTH_STEP_S))
            data = item.data
            while data:
                part, data = data[:step], data[step:]
                ready_at += len(part) / bytes_per_s
                await self.sleep_until(ready_at)
                self.send_part(part, data, item.timestamp)


class SlowCloseAttributes(ToxicAttributes):
    delay: int = Field(0, ge=0, description="ms")


class SlowCloseStage(Stage[SlowCloseAttributes]):
    """Pass data through, but hold the end of the stream for ``delay`` ms."""

    type_name = "slow_close"
    attributes_model = SlowCloseAttributes

    async def run(self) -> None:
        while True:
            item = await self.receive()
            if isinstance(item, EndOfStream):
                await self.sleep_until(self.host.now() + self.attributes.delay * MS)
                self.send(item)
                return
            self.send(item)


class TimeoutAttributes(ToxicAttributes):
    timeout: int = Field(0, ge=0, description="ms, 0 to hold the connection open until the toxic is removed")


class TimeoutStage(Stage[TimeoutAttributes]):
    """Drop all data; close the connection after ``timeout`` ms, or when the toxic is removed.

    The timeout runs from the moment the toxic starts acting on the connection.
    """

    type_name = "timeout"
    attributes_model = TimeoutAttributes

    async def run(self) -> None:
        timeout_ms = self.attributes.timeout
        deadline = self.host.now() + timeout_ms * MS if timeout_ms > 0 else None
        while True:
            item = await self.receive_until(deadline)
            if item is None:
                self.end_stream()
                return
            if isinstance(item, EndOfStream):
                self.send(item)
                return
            self.drop(item)

    def leftovers(self, removed: bool) -> list[Chunk | EndOfStream]:
        if not removed or self.finished:
            return super().leftovers(removed)
        # Removing a timeout toxic closes the connections it acted on, as in Toxiproxy, because the
        # data it dropped is gone and a stream that went on without it would be corrupt.
        self.end_stream()
        return []


class ResetPeerAttributes(ToxicAttributes):
    timeout: int = Field(0, ge=0, description="ms")


class ResetPeerStage(Stage[ResetPeerAttributes]):
    """Reset both sockets (SO_LINGER 0, so the peers see a TCP RST) ``timeout`` ms after data arrives.

    As in Toxiproxy, the first chunk or end of stream starts the timer and is itself dropped.
    """

    type_name = "reset_peer"
    attributes_model = ResetPeerAttributes

    async def run(self) -> None:
        self.drop(await self.receive())
        await self.sleep_until(self.host.now() + self.attributes.timeout * MS)
        self.finished = True
        self.host.reset_connection()


class SlicerAttributes(ToxicAttributes):
    average_size: int = Field(ge=1, description="bytes")
    size_variation: int = Field(0, ge=0, description="bytes")
    delay: int = Field(0, ge=0, description="µs")


class SlicerStage(Stage[SlicerAttributes]):
    """Cut every chunk into slices of ``average_size`` ± ``size_variation`` bytes, ``delay`` µs apart."""

    type_name = "slicer"
    attributes_model = SlicerAttributes

    async def run(self) -> None:
        while True:
            item = await self.receive()
            if isinstance(item, EndOfStream):
                self.send(item)
                return
            data = item.data
            while data:
                size = self._slice_size()
                part, data = data[:size], data[size:]
                self.send_part(part, data, item.timestamp)
                if self.attributes.delay:
                    await self.sleep_until(self.host.now() + self.attributes.delay * US)

    def _slice_size(self) -> int:
        variation = self.attributes.size_variation
        offset = self.host.rng.randint(-variation, variation) if variation else 0
        return max(1, self.attributes.average_size + offset)


class LimitDataAttributes(ToxicAttributes):
    bytes: int = Field(0, ge=0, description="bytes")


class LimitDataStage(Stage[LimitDataAttributes]):
    """Pass the first ``bytes`` bytes of the direction, then close the connection.

    The count survives attribute updates, so a new limit also counts the bytes already passed.
    """

    type_name = "limit_data"
    attributes_model = LimitDataAttributes

    async def run(self) -> None:
        while True:
            item = await self.receive()
            if isinstance(item, EndOfStream):
                self.send(item)
                return
            remaining = max(0, self.attributes.bytes - self.state.bytes_transmitted)
            part = item.data[:remaining]
            self.state.bytes_transmitted += len(part)
            self.current = None
            self.host.release(len(item.data) - len(part))
            if part:
                self.forward(Chunk(part, item.timestamp))
            if self.state.bytes_transmitted >= self.attributes.bytes:
                self.end_stream()
                return


TOXIC_TYPES: dict[str, type[Stage[Any]]] = {
    stage.type_name: stage
    for stage in (
        LatencyStage,
        BandwidthStage,
        SlowCloseStage,
        TimeoutStage,
        ResetPeerStage,
        SlicerStage,
        LimitDataStage,
    )
}


@dataclass
class Toxic:
    """A toxic as configured on a proxy; the links of its direction run it as stages."""

    name: str
    type: str
    stream: Direction
    toxicity: float
    attributes: ToxicAttributes

    @property
    def stage_class(self) -> builtins.type[Stage[Any]]:
        return TOXIC_TYPES[self.type]

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": self.attributes.model_dump(),
            "name": self.name,
            "type": self.type,
            "stream": self.stream.value,
            "toxicity": self.toxicity,
        }


def new_toxic(fields: ToxicFields) -> Toxic:
    """Build a toxic from the body of ``POST /proxies/{proxy}/toxics``, with Toxiproxy's defaults."""
    stream = _parse_stream(fields.stream if fields.stream is not None else "downstream")
    toxic_type = _parse_type(fields.type)
    return Toxic(
        name=fields.name or f"{toxic_type}_{stream.value}",
        type=toxic_type,
        stream=stream,
        toxicity=_parse_toxicity(fields.toxicity if fields.toxicity is not None else 1.0),
        attributes=_parse_attributes(toxic_type, fields.attributes or {}),
    )


def updated_toxic(toxic: Toxic, fields: ToxicFields) -> Toxic:
    """Apply an update body: given attributes replace the old ones, the rest are kept; so is toxicity."""
    merged = {**toxic.attributes.model_dump(), **(fields.attributes or {})}
    toxicity = toxic.toxicity if fields.toxicity is None else _parse_toxicity(fields.toxicity)
    attributes = _parse_attributes(toxic.type, merged)
    return Toxic(toxic.name, toxic.type, toxic.stream, toxicity, attributes)


def _parse_stream(value: str) -> Direction:
    try:
        return Direction(value.lower())
    except ValueError:
        raise ApiError(
            400, f"stream was invalid: {value!r}; it can be either upstream or downstream"
        ) from None


def _parse_type(value: str | None) -> str:
    if value not in TOXIC_TYPES:
        known = ", ".join(sorted(TOXIC_TYPES))
        raise ApiError(400, f"invalid toxic type: {value!r}; valid types are {known}")
    return value


def _parse_toxicity(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ApiError(400, f"toxicity must be between 0 and 1, got {value!r}")
    return float(value)


def _parse_attributes(toxic_type: str, attributes: dict[str, Any]) -> ToxicAttributes:
    model = TOXIC_TYPES[toxic_type].attributes_model
    try:
        return model.model_validate(attributes)
    except ValidationError as exc:
        allowed = ", ".join(f"{name} ({field.description})" for name, field in model.model_fields.items())
        problems = describe_validation_error(exc, "attributes")
        raise ApiError(400, f"invalid {toxic_type} toxic: {problems}; its attributes are {allowed}") from exc
