"""Addresses and toxic definitions of the embedded fault proxy: parsing, defaults and error messages."""

import pytest

from harness.faults.addresses import HostPort, normalize_listen, parse_host_port
from harness.faults.models import ApiError, Direction, ToxicFields
from harness.faults.toxics import TOXIC_TYPES, new_toxic, updated_toxic


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8474", HostPort("127.0.0.1", 8474)),
        ("localhost:0", HostPort("localhost", 0)),
        ("[::1]:26379", HostPort("::1", 26379)),
        (":8080", HostPort("", 8080)),
    ],
)
def test_parse_host_port_accepts_go_forms(value: str, expected: HostPort) -> None:
    assert parse_host_port(value, "listen") == expected


@pytest.mark.parametrize("value", ["127.0.0.1", "::1:80", "redis:port", "127.0.0.1:70000", "", "[::1]"])
def test_parse_host_port_rejects_invalid(value: str) -> None:
    with pytest.raises(ApiError, match="listen") as caught:
        parse_host_port(value, "listen")
    assert caught.value.status == 400


def test_host_port_formats_ipv6_in_brackets() -> None:
    assert str(HostPort("::1", 80)) == "[::1]:80"


async def test_normalize_listen_resolves_localhost() -> None:
    assert await normalize_listen("localhost:0") == "127.0.0.1:0"


def test_toxic_types_match_toxiproxy() -> None:
    expected = {"latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data"}
    assert set(TOXIC_TYPES) == expected


def test_new_toxic_applies_defaults() -> None:
    toxic = new_toxic(ToxicFields(type="latency"))
    assert toxic.name == "latency_downstream"
    assert toxic.stream is Direction.DOWNSTREAM
    assert toxic.toxicity == 1.0
    assert toxic.to_json()["attributes"] == {"latency": 0, "jitter": 0}


def test_new_toxic_stream_ignores_case() -> None:
    assert new_toxic(ToxicFields(type="timeout", stream="UpStream")).stream is Direction.UPSTREAM


def test_new_toxic_error_lists_attributes() -> None:
    with pytest.raises(ApiError) as caught:
        new_toxic(ToxicFields(type="latency", attributes={"delay": 5}))
    assert caught.value.status == 400
    assert "attributes.delay: extra inputs are not permitted" in caught.value.message
    assert "its attributes are latency (ms), jitter (ms)" in caught.value.message


def test_updated_toxic_keeps_unset_fields() -> None:
    toxic = new_toxic(ToxicFields(type="slicer", toxicity=0.5, attributes={"average_size": 8, "delay": 10}))
    updated = updated_toxic(toxic, ToxicFields(attributes={"size_variation": 2}))
    assert updated.to_json()["attributes"] == {"average_size": 8, "size_variation": 2, "delay": 10}
    assert updated.toxicity == 0.5
    assert (updated.name, updated.stream) == (toxic.name, toxic.stream)


def test_updated_toxic_validates_merged_attributes() -> None:
    toxic = new_toxic(ToxicFields(type="bandwidth", attributes={"rate": 100}))
    with pytest.raises(ApiError, match=r"attributes\.rate: input should be greater than or equal to 0"):
        updated_toxic(toxic, ToxicFields(attributes={"rate": -1}))
