"""Building blocks shared by the scenario models: strict models, names and gate modes."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_NAME_RE = re.compile(NAME_PATTERN)


def _check_name(value: Any) -> Any:
    if isinstance(value, str) and not _NAME_RE.match(value):
        raise ValueError(
            f"invalid name {value!r}: use 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return value


Name = Annotated[
    str, BeforeValidator(_check_name), WithJsonSchema({"type": "string", "pattern": NAME_PATTERN})
]
GateMode = Literal["block", "warn"]


class StrictModel(BaseModel):
    """Base of every scenario model: unknown keys, type coercion and infinities are errors.

    Strict mode keeps ``users: "4"`` or ``stream: 1`` from being read as something the author
    may not have meant; values with units go through their own parsers first.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
