"""Config fields that describe themselves: default, meaning, choices and flag, written once.

Every config dataclass (`DataConfig`, `ModelConfig`, `TrainConfig`, `SampleConfig`) declares its
fields with `option`, so the field's help text and choices live next to its default. The
command line builds its flags from them (``hidden_size`` -> ``--hidden-size``, with that help and
default), the API reference prints them, and a run configuration file is read into them with
`config_from_dict`, which refuses unknown keys. A new setting is therefore one edit: the field.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from textgen.validation import InvalidTypeError, InvalidValueError

T = TypeVar("T")

_META_KEY = "textgen"


@dataclass(frozen=True)
class OptionInfo:
    """What `option` recorded about a field.

    Attributes:
        name: the field's name (``hidden_size``).
        default: its default value.
        help: one sentence on what it does and when to change it.
        choices: the accepted strings, when the field takes one of a few.
        flag: the command-line flag when it is not derived from the name (``--out``), or
            ``""`` when the field has no flag of its own. A boolean field whose default is True
            and that has a flag (``progress`` / ``--quiet``) is switched off by that flag.
        group: the heading the field is listed under (``--help``, the API reference).
        annotation: the field's type annotation, as written.
    """

    name: str
    default: Any
    help: str
    choices: tuple[str, ...] | None
    flag: str | None
    group: str | None
    annotation: str

    @property
    def cli_flag(self) -> str | None:
        """``--hidden-size`` for ``hidden_size``, the explicit flag when set, None for none."""
        if self.flag == "":
            return None
        return self.flag or "--" + self.name.replace("_", "-")


def option(
    default: Any,
    help: str,
    *,
    choices: Sequence[str] | None = None,
    flag: str | None = None,
    group: str | None = None,
) -> Any:
    """A dataclass field with its documentation attached.

    Args:
        default: the default value (immutable: a tuple rather than a list).
        help: what the field does, for ``--help`` and the API reference.
        choices: the strings accepted, when the field is one of a few.
        flag: a command-line flag other than the one derived from the name, or ``""`` for
            none (the front end handles the field another way).
        group: a heading for related fields (``"optimizer"``, ``"schedule"``).

    Example:
        >>> @dataclass(frozen=True)
        ... class Example:
        ...     size: int = option(8, "units per layer")
        >>> describe(Example)[0].help
        'units per layer'
    """
    info = {"help": help, "choices": tuple(choices) if choices else None, "flag": flag}
    metadata = {_META_KEY: {**info, "group": group}}
    return dataclasses.field(default=default, metadata=metadata)


def describe(config_class: type) -> list[OptionInfo]:
    """The fields of a config dataclass with their recorded help, in declaration order.

    Fields declared without `option` (required ones such as ``ModelConfig.vocab_size``) get an
    empty help text and ``dataclasses.MISSING`` as default.
    """
    infos = []
    for item in dataclasses.fields(config_class):
        meta = item.metadata.get(_META_KEY, {})
        infos.append(
            OptionInfo(
                name=item.name,
                default=item.default,
                help=meta.get("help", ""),
                choices=meta.get("choices"),
                flag=meta.get("flag"),
                group=meta.get("group"),
                annotation=str(item.type),
            )
        )
    return infos


def config_from_dict(config_class: type[T], data: Mapping[str, Any], *, source: str = "") -> T:
    """Build a config dataclass from a mapping, refusing keys it does not have.

    Lists become tuples (JSON and TOML have no tuples); everything else is validated by the
    dataclass itself.

    Args:
        config_class: the dataclass to build.
        data: field name -> value.
        source: where the mapping came from (a file and section), for error messages.

    Raises:
        InvalidValueError: an unknown key (with the closest known name, when one is close).
        TypeError / ValueError: a value the dataclass refuses.
    """
    if not isinstance(data, Mapping):
        where = f"{source}: " if source else ""
        raise InvalidTypeError(
            source or config_class.__name__,
            f"{where}expected a table of settings, got {type(data).__name__}",
        )
    names = [item.name for item in dataclasses.fields(config_class)]  # type: ignore[arg-type]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            where = f"{source}: " if source else ""
            raise InvalidValueError(
                str(key),
                f"{where}unknown {config_class.__name__} setting {key!r}{hint}",
            )
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return config_class(**values)


__all__ = ["OptionInfo", "config_from_dict", "describe", "option"]
