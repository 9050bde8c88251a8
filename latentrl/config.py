"""Frozen-dataclass configs turned into command-line flags, and named presets.

Every config field carries its help text in ``field(metadata={"help": ...})`` so that
``--help`` explains each option and every preset value can be overridden from the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from latentrl.errors import ArtifactError
from latentrl.limits import limit_problems

C = TypeVar("C")


def opt(default: Any, help: str) -> Any:
    """A dataclass field with a default and its ``--help`` text."""
    if isinstance(default, list | dict):
        raise TypeError("use tuples for sequence defaults: configs are frozen")
    return dataclasses.field(default=default, metadata={"help": help})


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _field_type(cls: type, f: dataclasses.Field[Any]) -> Any:
    hints = typing.get_type_hints(cls)
    return hints[f.name]


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def add_config_args(
    parser: argparse.ArgumentParser,
    cls: type,
    group: str | None = None,
    prefix: str = "",
    exclude: frozenset[str] = frozenset(),
    shown: Any = None,
) -> None:
    """Add one ``--[prefix-]flag`` per field of dataclass ``cls``; defaults stay ``None``.

    ``None`` means "not given", so the preset's value stands (see :func:`override`); parsed
    values land in ``args.<prefix>_<field>``. ``shown`` (a config instance, e.g. the chosen
    preset's) supplies the defaults printed by ``--help``.
    """
    target = parser.add_argument_group(group or cls.__name__) if group is not None else parser
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        tp = _field_type(cls, f)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        kwargs: dict[str, Any] = {"default": None, "help": f.metadata.get("help", "")}
        if origin in (typing.Union, types.UnionType):
            non_none = [a for a in args if a is not type(None)]
            tp = non_none[0]
            origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is tuple:
            kwargs["nargs"] = "+"
            kwargs["type"] = args[0]
        elif origin is typing.Literal:
            kwargs["choices"] = list(args)
            kwargs["type"] = type(args[0])
        elif tp is bool:
            kwargs["type"] = _parse_bool
            kwargs["metavar"] = "{true,false}"
        else:
            kwargs["type"] = tp
        default = getattr(shown, f.name) if shown is not None else f.default
        kwargs["help"] += f" (default: {default!r})"
        # argparse %-formats help strings: a literal "5%" would break --help.
        kwargs["help"] = kwargs["help"].replace("%", "%%")
        name = f"{prefix}_{f.name}" if prefix else f.name
        target.add_argument(_flag(name), dest=name, **kwargs)


def override(config: C, values: Mapping[str, Any], prefix: str = "") -> C:
    """Return ``config`` with the fields given (non-``None``) in ``values`` replaced."""
    names = {f.name for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    strip = f"{prefix}_" if prefix else ""
    given = {k[len(strip) :]: v for k, v in values.items() if k.startswith(strip)}
    changes = {k: v for k, v in given.items() if k in names and v is not None}
    for k, v in changes.items():
        if isinstance(v, list):
            changes[k] = tuple(v)
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]


def to_json(config: Any) -> str:
    """Config -> JSON text (tuples become lists)."""
    return json.dumps(dataclasses.asdict(config), indent=2, sort_keys=True)


def _type_problem(tp: Any, value: Any) -> str | None:
    """Why ``value`` (from JSON) does not fit the annotation ``tp``, or None if it does."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if any(_type_problem(a, value) is None for a in args):
            return None
        return f"expected {tp}, found {value!r}"
    if tp is type(None):
        return None if value is None else f"expected null, found {value!r}"
    if origin is typing.Literal:
        return None if value in args else f"expected one of {list(args)}, found {value!r}"
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return f"expected a list, found {value!r}"
        inner = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if len(inner) != len(value):
            return f"expected {len(inner)} values, found {len(value)}"
        for a, v in zip(inner, value, strict=True):
            if (problem := _type_problem(a, v)) is not None:
                return problem
        return None
    if tp is bool:
        return None if isinstance(value, bool) else f"expected true or false, found {value!r}"
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"expected an integer, found {value!r}"
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and math.isfinite(value):
            return None
        return f"expected a finite number, found {value!r}"
    if tp is str:
        return None if isinstance(value, str) else f"expected a string, found {value!r}"
    return None  # other annotations are checked by the class itself


def from_dict(cls: type[C], data: Any, source: str | os.PathLike[str] | None = None) -> C:
    """JSON-loaded mapping -> config of type ``cls``, validated before anything is built.

    Unknown keys, values of the wrong type and sizes outside :data:`latentrl.limits.LIMITS`
    are an :class:`~latentrl.errors.ArtifactError` naming ``source`` (the file it came from).
    """
    where = f"{source}: " if source is not None else ""
    fix = (
        "Fix: re-train, or restore the file from the run that wrote it"
        if source is not None
        else "Fix: check the values"
    )
    if not isinstance(data, Mapping):
        raise ArtifactError(
            f"{where}expected a JSON object of {cls.__name__} fields, found "
            f"{type(data).__name__}. {fix}."
        )
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - set(names)
    if unknown:
        raise ArtifactError(
            f"{where}unknown {cls.__name__} fields {sorted(unknown)}: expected only "
            f"{sorted(names)}, found a file written by another version of latentrl. Fix: "
            "re-train or edit the config file."
        )
    hints = typing.get_type_hints(cls)
    problems = [
        f"{k}: {p}" for k, v in data.items() if (p := _type_problem(hints[k], v)) is not None
    ]
    problems += limit_problems(cls.__name__, data)
    if problems:
        listing = "\n  ".join(problems)
        raise ArtifactError(f"{where}{cls.__name__} values out of place:\n  {listing}\n{fix}.")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise ArtifactError(f"{where}{cls.__name__} refused: {e}. {fix}.") from e


def preset_name(argv: list[str] | None, choices: Sequence[str], default: str) -> str:
    """The ``--preset`` given on the command line (read early so ``--help`` shows its values)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default=default, choices=list(choices))
    return pre.parse_known_args(argv)[0].preset
