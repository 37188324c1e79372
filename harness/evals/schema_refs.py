"""``$ref`` resolution of JSON Schemas: local files only, relative to the schema's own folder.

A schema's base URI is the ``file:`` URI of its file (for an inline schema, of the scenario's
folder), so ``"$ref": "address.schema.json"`` names a file beside it. Nothing is fetched over a
network: a reference to another scheme, a missing file or a JSON pointer to nowhere is an
unresolvable reference, reported at load time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit
from urllib.request import url2pathname

from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012


class SchemaReferenceError(Exception):
    """A ``$ref`` that does not resolve; the message names it and where it occurs."""


def retrieve_local(uri: str) -> Resource[Any]:
    """Read the JSON Schema at a ``file:`` URI; raise NoSuchResource for any other scheme."""
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise NoSuchResource(ref=uri)  # type: ignore[call-arg]
    contents = json.loads(Path(url2pathname(parts.path)).read_text(encoding="utf-8"))
    return Resource.from_contents(contents, default_specification=DRAFT202012)


def with_base_uri(schema: dict[str, Any], base_uri: str) -> dict[str, Any]:
    """Return ``schema`` with ``$id`` set to ``base_uri`` unless it has an ``$id`` of its own."""
    return schema if "$id" in schema else {"$id": base_uri, **schema}


def local_registry() -> Registry[Any]:
    return Registry(retrieve=retrieve_local)  # type: ignore[call-arg]


def resolve_references(schema: dict[str, Any]) -> dict[str, Any]:
    """Resolve every ``$ref`` of ``schema`` (which has an ``$id``) and of the files it names.

    Return the referenced files' contents by URI, so that a scorer's fingerprint changes when a
    referenced file changes. Raise SchemaReferenceError for the first reference that does not resolve.
    """
    registry = local_registry().with_resource(
        schema["$id"], Resource.from_contents(schema, default_specification=DRAFT202012)
    )
    documents: dict[str, Any] = {}
    pending = [(schema, schema["$id"])]
    while pending:
        document, document_uri = pending.pop()
        for base, reference, where in _references(document, document_uri, "#"):
            try:
                registry.resolver(base_uri=base).lookup(reference)
            except Unresolvable:
                place = where if document is schema else f"{document_uri}{where}"
                message = f"$ref {reference!r} at {place} does not resolve ({urljoin(base, reference)})"
                raise SchemaReferenceError(message) from None
            uri = urljoin(base, reference).partition("#")[0]
            if uri.startswith("file:") and uri not in documents and uri != schema["$id"]:
                documents[uri] = retrieve_local(uri).contents
                pending.append((documents[uri], uri))
    return documents


def _references(node: Any, base: str, where: str) -> Iterator[tuple[str, str, str]]:
    if isinstance(node, list):
        for position, child in enumerate(node):
            yield from _references(child, base, f"{where}/{position}")
        return
    if not isinstance(node, dict):
        return
    if isinstance(node.get("$id"), str):
        base = urljoin(base, node["$id"])
    if isinstance(node.get("$ref"), str):
        yield base, node["$ref"], where
    for key, child in node.items():
        if key not in ("$ref", "enum", "const"):
            yield from _references(child, base, f"{where}/{key}")
