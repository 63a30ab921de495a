"""The per-route ``parity:`` block of a plan: how two responses are compared.

Every rule is data, reviewed in git with the rest of the plan, so that what is
ignored or tolerated is visible to the reviewer of the change that allowed it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from .paths import parse_pattern

__all__ = [
    "LagConfig",
    "NoiseConfig",
    "NormaliseRule",
    "ParityConfig",
    "ToleranceRule",
    "UnorderedRule",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_pattern(value: str) -> str:
    try:
        parse_pattern(value)
    except ValueError as exc:
        raise ValueError(f"bad path {value!r}: {exc}") from None
    return value.strip()


def _check_root(value: str) -> str:
    value = _check_pattern(value)
    if not value.startswith(("status", "headers", "body", "*")):
        raise ValueError(
            f"path {value!r} must start with status, headers or body (or a wildcard)"
        )
    return value


RulePath = Annotated[str, AfterValidator(_check_root)]


class UnorderedRule(_Model):
    """An array compared as a multiset, optionally pairing elements by a key."""

    path: RulePath = Field(description="Path of the array, e.g. `body.results`.")
    key: str | None = Field(
        default=None,
        description="Member that identifies an element (e.g. `id`): elements with "
        "the same key are paired and diffed field by field. Unset: elements are "
        "matched whole and unmatched ones reported as missing or extra.",
    )


class ToleranceRule(_Model):
    """Numbers at a path are equal when within an absolute or relative margin."""

    path: RulePath = Field(description="Path of the numbers, e.g. `body.**.price`.")
    abs: float = Field(default=0.0, ge=0, description="Absolute tolerance.")
    rel: float = Field(
        default=0.0, ge=0, description="Relative tolerance (0.01 is 1%)."
    )


class NormaliseRule(_Model):
    """Values at a path are put in a canonical form before they are compared."""

    path: RulePath = Field(description="Path of the values, e.g. `body.**.created_at`.")
    as_: Literal["timestamp", "decimal", "lowercase", "trim"] = Field(
        alias="as",
        description="`timestamp`: ISO 8601, converted to UTC, truncated to "
        "`precision`; `decimal`: numbers and numeric strings compared as decimals "
        '("12.5" == "12.50" == 12.5); `lowercase`: case-insensitive strings; '
        "`trim`: surrounding whitespace ignored.",
    )
    precision: Literal["m", "s", "ms", "us"] = Field(
        default="us",
        description="For `timestamp`: the unit timestamps are truncated to.",
    )


class NoiseConfig(_Model):
    """The noise baseline: the monolith compared with itself."""

    sample: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of shadowed safe requests sent to the monolith a second "
        "time to learn which fields differ anyway (0 disables it).",
    )
    learn_after: int = Field(
        default=3,
        ge=1,
        description="A field path is known noise once it has differed between two "
        "monolith answers this many times; later comparisons without a second "
        "call then report it as noise too.",
    )


class LagConfig(_Model):
    """When differences are sync lag rather than a mismatch.

    Both sides say which data version they answered from
    (``X-Strangler-Data-Version``); differences while the service's version
    is behind the monolith's are counted as ``lag``, unless it has been
    behind for too long or by too much: then they are a mismatch again.
    """

    max_seconds: float = Field(
        default=30.0,
        ge=0,
        description="A service behind the monolith's version for longer than this "
        "(seconds) is not catching up: its differences count as mismatches.",
    )
    max_events: int = Field(
        default=20,
        ge=0,
        description="Likewise for a service more than this many events behind.",
    )


def _listify(value: Any) -> Any:
    if isinstance(value, str | dict):
        return [value]
    return value


class ParityConfig(_Model):
    """How the two responses of a shadowed route are compared and stored."""

    ignore: tuple[RulePath, ...] = Field(
        default=(),
        description="Paths never compared, e.g. `headers.date`, "
        "`body.results[*].updated_at`, `body.**.etag`.",
    )
    unordered: tuple[UnorderedRule, ...] = Field(
        default=(),
        description="Arrays compared regardless of order: a path, or "
        "`{path: ..., key: id}` to pair elements by a member.",
    )
    float_tolerance: float = Field(
        default=0.0,
        ge=0,
        description="Two numbers anywhere are equal when they differ by at most "
        "this, absolutely or relatively (`math.isclose` with both tolerances).",
    )
    numeric_tolerance: tuple[ToleranceRule, ...] = Field(
        default=(),
        description="Tolerances for the numbers at given paths; they replace "
        "`float_tolerance` there.",
    )
    normalise: tuple[NormaliseRule, ...] = Field(
        default=(), description="Canonical forms applied before comparing."
    )
    headers: tuple[str, ...] = Field(
        default=(),
        description="Response headers compared besides `content-type` (always).",
    )
    sensitive: tuple[str, ...] = Field(
        default=(),
        description="Body paths masked before anything is stored, e.g. "
        "`body.**.email`. Authorization, Cookie, Set-Cookie and values that look "
        "like emails, card numbers or bearer tokens are masked in any case.",
    )
    noise: NoiseConfig = Field(default=NoiseConfig(), description="The noise baseline.")
    lag: LagConfig = Field(
        default=LagConfig(),
        description="How long, or how far, a service may lag behind the monolith's "
        "data before its differences count as mismatches.",
    )
    max_examples: int = Field(
        default=5,
        ge=0,
        description="Example pairs kept per route and field-path group.",
    )

    @field_validator("unordered", mode="before")
    @classmethod
    def _unordered_shorthand(cls, value: Any) -> Any:
        value = _listify(value)
        if isinstance(value, list | tuple):
            return [{"path": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator(
        "numeric_tolerance",
        "normalise",
        "ignore",
        "sensitive",
        "headers",
        mode="before",
    )
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return _listify(value)

    @field_validator("sensitive")
    @classmethod
    def _sensitive_paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        checked = tuple(_check_pattern(v) for v in value)
        for path in checked:
            if not path.startswith(("body", "*")):
                raise ValueError(f"sensitive path {path!r} must start with body")
        return checked

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v.strip().lower() for v in value))
