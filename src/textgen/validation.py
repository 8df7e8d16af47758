"""Checking user-given values: one set of helpers, one exception policy, for every module.

Public entry points (config dataclasses, constructors, top-level functions) validate what they
are given with these helpers; inner loops (the training step, the decoding step) trust it. The
policy:

* a value of the wrong *type* raises `InvalidTypeError` (a `TypeError`); ``True``/``False``
  are never accepted as numbers, and an ``int`` is accepted where a ``float`` is expected;
* a value of the right type but out of range, or not among the choices, raises
  `InvalidValueError` (a `ValueError`);
* every message names the parameter, shows the value it got and says what is accepted.

Both exceptions carry the parameter's name in ``.parameter`` (and every name the message is
about in ``.parameters``), so a front end can say which of *its* names was wrong: the command
line turns ``hidden_size`` into ``--hidden-size``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any


class InvalidValueError(ValueError):
    """A parameter has the right type but a value that is not accepted.

    ``parameter`` may name several parameters (a tuple) when the message is about all of them;
    ``.parameter`` is then the first and ``.parameters`` all of them.
    """

    def __init__(self, parameter: str | tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.parameters = (parameter,) if isinstance(parameter, str) else tuple(parameter)
        self.parameter = self.parameters[0]


class InvalidTypeError(TypeError):
    """A parameter has a type that is not accepted."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.parameters = (parameter,)


def _type_error(name: str, value: Any, expected: str) -> InvalidTypeError:
    return InvalidTypeError(
        name, f"{name} must be {expected}, got {type(value).__name__} {value!r}"
    )


def _bounds_text(
    minimum: float | None, maximum: float | None, min_inclusive: bool, max_inclusive: bool
) -> str:
    if minimum is not None and maximum is not None:
        left, right = "[" if min_inclusive else "(", "]" if max_inclusive else ")"
        return f"in {left}{minimum}, {maximum}{right}"
    if minimum is not None:
        return f"{'>=' if min_inclusive else '>'} {minimum}"
    assert maximum is not None
    return f"{'<=' if max_inclusive else '<'} {maximum}"


def _check_bounds(
    name: str,
    value: float,
    minimum: float | None,
    maximum: float | None,
    min_inclusive: bool,
    max_inclusive: bool,
    kind: str,
) -> None:
    too_low = minimum is not None and (value < minimum if min_inclusive else value <= minimum)
    too_high = maximum is not None and (value > maximum if max_inclusive else value >= maximum)
    if too_low or too_high:
        bounds = _bounds_text(minimum, maximum, min_inclusive, max_inclusive)
        raise InvalidValueError(name, f"{name} must be {kind} {bounds}, got {value!r}")


def check_int(
    name: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """``value`` as an ``int`` within ``[minimum, maximum]`` (either bound may be None).

    Raises:
        InvalidTypeError: not an int (``bool`` and ``float`` included).
        InvalidValueError: outside the bounds.

    Example:
        >>> check_int("batch_size", 32, minimum=1)
        32
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(name, value, "an integer")
    _check_bounds(name, value, minimum, maximum, True, True, "an integer")
    return int(value)


def check_optional_int(
    name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    """Like `check_int`, but None passes through (meaning "off" or "no limit")."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(name, value, "None or an integer")
    _check_bounds(name, value, minimum, maximum, True, True, "None or an integer")
    return int(value)


def check_float(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
) -> float:
    """``value`` as a finite ``float`` within the bounds (ints are accepted, bools are not).

    Raises:
        InvalidTypeError: not a number.
        InvalidValueError: NaN, infinite, or outside the bounds.

    Example:
        >>> check_float("dropout", 0.2, minimum=0, maximum=1, max_inclusive=False)
        0.2
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(name, value, "a number")
    if not math.isfinite(value):
        raise InvalidValueError(name, f"{name} must be a finite number, got {value!r}")
    _check_bounds(name, value, minimum, maximum, min_inclusive, max_inclusive, "a number")
    return float(value)


def check_optional_float(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
) -> float | None:
    """Like `check_float`, but None passes through."""
    if value is None:
        return None
    return check_float(
        name,
        value,
        minimum=minimum,
        maximum=maximum,
        min_inclusive=min_inclusive,
        max_inclusive=max_inclusive,
    )


def check_bool(name: str, value: Any) -> bool:
    """``value`` when it is ``True`` or ``False`` (not 0/1, not a string).

    Raises:
        InvalidTypeError: anything else.
    """
    if not isinstance(value, bool):
        raise _type_error(name, value, "True or False")
    return value


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """``value`` when it is one of ``choices`` (strings, compared exactly).

    Raises:
        InvalidTypeError: not a string.
        InvalidValueError: not one of the choices (the message lists them).

    Example:
        >>> check_choice("cell", "gru", ("lstm", "gru"))
        'gru'
    """
    options = tuple(choices)
    if not isinstance(value, str):
        raise _type_error(name, value, f"one of {_listing(options)}")
    if value not in options:
        raise InvalidValueError(name, f"{name} must be one of {_listing(options)}, got {value!r}")
    return value


def check_str(name: str, value: Any, *, allow_empty: bool = False) -> str:
    """``value`` when it is a string (non-empty unless ``allow_empty``)."""
    if not isinstance(value, str):
        raise _type_error(name, value, "a string")
    if not value and not allow_empty:
        raise InvalidValueError(name, f"{name} must not be empty")
    return value


def check_strings(name: str, value: Any, *, allow_empty_strings: bool = False) -> tuple[str, ...]:
    """A string or a sequence of strings, as a tuple (each non-empty unless allowed).

    Raises:
        InvalidTypeError: not a string or a sequence of strings.
        InvalidValueError: an empty string where none is allowed.
    """
    items: Sequence[Any] = (value,) if isinstance(value, str) else value
    if not isinstance(items, tuple | list) or not all(isinstance(v, str) for v in items):
        raise _type_error(name, value, "a string or a sequence of strings")
    if not allow_empty_strings and not all(items):
        raise InvalidValueError(name, f"{name} must hold non-empty strings, got {list(items)!r}")
    return tuple(items)


def _listing(options: Sequence[str]) -> str:
    return ", ".join(repr(option) for option in options)


__all__ = [
    "InvalidTypeError",
    "InvalidValueError",
    "check_bool",
    "check_choice",
    "check_float",
    "check_int",
    "check_optional_float",
    "check_optional_int",
    "check_str",
    "check_strings",
]
