"""``--param KEY=VALUES``: the parameter grid of a sweep, checked against the settings model.

``KEY`` is a dotted setting (``strategies.ma_crossover.fast``), the same key a
config file or a ``TRADINGD_*`` variable sets. ``VALUES`` is a list
(``10,20,30``; ``true,false``; ``synthetic,csv``) or a range ``start:stop:step``
whose ``stop`` is included when it falls on the step grid (``10:50:10`` is
10, 20, 30, 40, 50). A value is an integer when it is written as one and a
float otherwise (``1`` vs ``1.0`` or ``0.5``); range steps are exact decimals,
so ``0.1:0.3:0.1`` is 0.1, 0.2, 0.3 and not 0.30000000000000004. Each value is
checked against the setting's type here (a fraction for an integer setting is
refused, naming the key and the value); its bounds and the cross-checks between
settings (``fast < slow``) are checked per combination, when the combination is
applied to the settings (``actors.system.config.with_values``), so one bad
combination is one failed row, not a refused sweep.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import types
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from actors.system.config import Settings
from daemon.errors import ConfigError

Value = int | float | bool | str
Combination = dict[str, Value]
"""One point of the grid: setting key -> value, in the order the parameters were given."""

MAX_COMBINATIONS: Final = 10_000
"""More is a typo (a range step of 1 where 10 was meant), not a sweep."""


@dataclass(frozen=True, slots=True)
class Span:
    """A range ``start:stop:step``; ``last`` is the greatest value on the grid, at most stop."""

    start: int | float
    last: int | float
    step: int | float


@dataclass(frozen=True, slots=True)
class Param:
    """One ``--param``: a setting and the values it takes (``span`` when given as a range)."""

    key: str
    values: tuple[Value, ...]
    span: Span | None = None

    @property
    def is_int(self) -> bool:
        return all(isinstance(v, int) and not isinstance(v, bool) for v in self.values)


def parse_params(texts: Sequence[str]) -> list[Param]:
    """Every ``--param``; at least one, each key once, the grid at most MAX_COMBINATIONS."""
    if not texts:
        raise ConfigError("--param", "give at least one KEY=VALUES (e.g. strategies.x.fast=10,20)")
    params = [parse_param(t) for t in texts]
    seen: set[str] = set()
    for p in params:
        if p.key in seen:
            raise ConfigError(f"--param {p.key}", "given twice; list every value in one --param")
        seen.add(p.key)
    size = 1
    for p in params:
        size *= len(p.values)
    if size > MAX_COMBINATIONS:
        raise ConfigError("--param", f"{size} combinations; at most {MAX_COMBINATIONS}")
    return params


def parse_param(text: str) -> Param:
    """One ``KEY=VALUES``; a bad key or value is a ``ConfigError`` naming both."""
    key, sep, spec = text.partition("=")
    key = key.strip()
    if not sep or not key or not spec.strip():
        raise ConfigError(
            "--param", f"{text!r}: expected KEY=VALUES (a list a,b or start:stop:step)"
        )
    annotation = setting_type(key)
    kind = _numeric_kind(annotation)
    if kind is not None and spec.count(":") == 2:
        span, raw = _parse_span(key, spec, kind)
    else:
        span, raw = None, [_token(key, t) for t in spec.split(",")]
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    values: list[Value] = []
    for value in raw:
        try:
            checked = adapter.validate_python(value)
        except ValidationError as exc:
            why = exc.errors(include_url=False)[0]["msg"]
            raise ConfigError(f"--param {key}", f"{value!r}: {why}") from None
        # A path or a date stays as written (a grid value is a plain scalar).
        values.append(checked if isinstance(checked, int | float | str) else value)
    if len(set(values)) != len(values):
        raise ConfigError(f"--param {key}", f"{spec!r} lists a value twice")
    if span is not None and kind == "float":
        span = Span(float(span.start), float(span.last), float(span.step))
    return Param(key, tuple(values), span)


def setting_type(key: str) -> Any:
    """The type of the setting at dotted ``key``; ``ConfigError`` if there is none."""
    model: type[BaseModel] = Settings
    parts = key.split(".")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None or part == "secrets":
            where = ".".join(parts[:i]) or "the settings"
            known = ", ".join(n for n in model.model_fields if n != "secrets")
            raise ConfigError(f"--param {key}", f"no setting {part!r} in {where} (known: {known})")
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if i == len(parts) - 1:
                raise ConfigError(f"--param {key}", "is a section; name one of its settings")
            model = annotation
            continue
        if i != len(parts) - 1:
            raise ConfigError(f"--param {key}", f"{'.'.join(parts[: i + 1])} is not a section")
        return annotation
    raise ConfigError(f"--param {key}", "no such setting")  # pragma: no cover - loop returns


def combinations(params: Sequence[Param]) -> list[Combination]:
    """The grid in a fixed order: the first parameter slowest, the last fastest."""
    keys = [p.key for p in params]
    points = itertools.product(*(p.values for p in params))
    return [dict(zip(keys, point, strict=True)) for point in points]


def combination_id(combo: Combination) -> str:
    """A stable name for a combination (its run directory): the same values, the same id."""
    canonical = json.dumps(sorted(combo.items()), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def cell(value: Value | None) -> str:
    """A value as results.csv writes it: exact floats, lowercase booleans."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _numeric_kind(annotation: Any) -> str | None:
    """``"int"`` or ``"float"`` for a (possibly optional) number setting, else None."""
    args = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else ()
    candidates = [a for a in args if a is not type(None)] if args else [annotation]
    if candidates == [int]:
        return "int"
    if candidates == [float]:
        return "float"
    return None


def _parse_span(key: str, spec: str, kind: str) -> tuple[Span, list[Value]]:
    texts = [t.strip() for t in spec.split(":")]
    try:
        start, stop, step = (Decimal(t) for t in texts)
    except InvalidOperation:
        raise ConfigError(f"--param {key}", f"{spec!r}: expected numbers start:stop:step") from None
    if not all(d.is_finite() for d in (start, stop, step)):
        raise ConfigError(f"--param {key}", f"{spec!r}: start, stop and step must be finite")
    if step <= 0:
        raise ConfigError(f"--param {key}", f"{spec!r}: the step must be positive")
    if stop < start:
        raise ConfigError(f"--param {key}", f"{spec!r}: stop is below start")
    count = int((stop - start) // step) + 1
    if count > MAX_COMBINATIONS:
        raise ConfigError(f"--param {key}", f"{spec!r}: {count} values; at most {MAX_COMBINATIONS}")
    points = [start + i * step for i in range(count)]
    integral = all(_is_int_text(t) for t in texts)
    if kind == "int" and not integral:
        raise ConfigError(f"--param {key}", f"{spec!r}: an integer setting needs integer steps")
    numbers: list[int | float] = [int(p) if integral else float(p) for p in points]
    span = Span(numbers[0], numbers[-1], int(step) if integral else float(step))
    return span, list(numbers)


def _is_int_text(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _token(key: str, text: str) -> Value:
    """One listed value: an integer, a float, true/false, or the text itself."""
    text = text.strip()
    if not text:
        raise ConfigError(f"--param {key}", "an empty value in the list")
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if _is_int_text(text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        raise ConfigError(f"--param {key}", f"{text!r}: not a finite number")
    return number
