"""Options as typed dataclass fields: each option is one :func:`option` entry, from which its
default, its check, its key in a config file and its command-line flag all come.

A section of options is a ``@dataclass(frozen=True, kw_only=True)`` whose fields are made by
:func:`option`; :func:`check` runs every field's check, :func:`defaults` lists the defaults,
:func:`keys` the names a config file may hold, :func:`add_flags` adds the flags to an
``argparse`` parser. The training options are :class:`pyrovae.infer.options.Options`, the
data, model and run options :mod:`pyrovae.runs.options`.
"""

import argparse
import dataclasses
import decimal
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import checks

Check = Callable[[str, Any], Any]
"""``check(name, value)``: raises ``ValueError`` on a bad value."""


def option(
    default: Any,
    help: str,  # noqa: A002
    check: Check | None = None,
    parse: Callable[[str], Any] | None = None,
    flag: bool | str = True,
    key: bool = True,
    metavar: str | None = None,
    repeat: bool = False,
    result: bool = True,
) -> Any:
    """A dataclass field for one option.

    :param default: the one default, in Python and on the command line.
    :param str help: one line for ``--help`` (the default is added to it).
    :param check: ``check(name, value)`` raising ``ValueError`` (:mod:`pyrovae.checks`).
    :param parse: the flag's ``argparse`` type (text → value); ``bool`` makes a switch.
    :param flag: ``True``: ``--name-with-dashes``; a text: that flag instead (``"--quiet"`` for
        ``progress``, a switch that stores ``False``); ``False``: no flag.
    :param bool key: whether a config file may set it (and ``config.yaml`` records it).
    :param bool repeat: the flag may be given several times; its value is the list of them.
    :param bool result: ``False`` for a key that leaves the trained model and its numbers alone
        (how the run is watched or read, e.g. ``logger``, ``num_workers``): ``config.yaml``
        does not record it and a resumed run may change it (:func:`free_keys`).
    """
    meta = {"help": help, "check": check, "parse": parse, "flag": flag, "key": key}
    meta.update(metavar=metavar, repeat=repeat, result=result)
    return dataclasses.field(default=default, metadata=meta)


def check(instance: Any) -> None:
    """Run the check of every field of the dataclass ``instance``."""
    for f in dataclasses.fields(instance):
        if f.metadata.get("check") is not None:
            f.metadata["check"](f.name, getattr(instance, f.name))


def check_values(sections: Iterable[Any], values: Mapping[str, Any]) -> None:
    """Run the checks of the fields of ``sections`` named in the mapping ``values``."""
    for section in sections:
        for f in dataclasses.fields(section):
            if f.name in values and f.metadata.get("check") is not None:
                f.metadata["check"](f.name, values[f.name])


def defaults(*sections: Any, only_keys: bool = False) -> dict[str, Any]:
    """``{name: default}`` of the fields of ``sections`` (with ``only_keys`` those a config
    file may set)."""
    return {
        f.name: f.default
        for section in sections
        for f in dataclasses.fields(section)
        if f.metadata.get("key", True) or not only_keys
    }


def keys(*sections: Any) -> tuple[str, ...]:
    """The names a config file may hold, in order."""
    return tuple(defaults(*sections, only_keys=True))


def free_keys(*sections: Any) -> tuple[str, ...]:
    """The config keys of ``sections`` that leave the result alone (``result=False``)."""
    return tuple(
        f.name
        for section in sections
        for f in dataclasses.fields(section)
        if f.metadata.get("key", True) and not f.metadata.get("result", True)
    )


def add_flags(parser: argparse.ArgumentParser, *sections: Any) -> None:
    """One flag per field of ``sections`` that has one, its ``dest`` the field's name. A flag's
    default is ``None`` (unset: a config file or the option's own default decides); a switch's
    is the option's default."""
    for section in sections:
        for f in dataclasses.fields(section):
            flag, meta = f.metadata.get("flag", False), f.metadata
            if not flag:
                continue
            name = flag if isinstance(flag, str) else "--" + f.name.replace("_", "-")
            default = f"default {f.default}" if f.default is not None else "unset by default"
            if meta["parse"] is bool:
                store = "store_false" if f.default else "store_true"
                parser.add_argument(
                    name, dest=f.name, action=store, default=f.default, help=meta["help"]
                )
                continue
            parser.add_argument(
                name,
                dest=f.name,
                action="append" if meta.get("repeat") else "store",
                type=meta["parse"],
                metavar=meta["metavar"],
                help=f"{meta['help']} ({default})",
            )


def integer(text: str) -> int:
    """An integer flag: ``100``, or exponent notation that is exactly an integer (``1e8``)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = decimal.Decimal(text.strip())
        if value.is_finite() and value.adjusted() > 100:
            raise argparse.ArgumentTypeError(f"{text!r} is out of range")
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
    except decimal.InvalidOperation:
        pass
    raise argparse.ArgumentTypeError(f"invalid int value: {text!r}")


def integers(text: str) -> list[int]:
    """A list of integers: ``256,128``."""
    try:
        return [integer(v) for v in text.split(",") if v.strip()]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected integers like 256,128, got {text!r}") from None


def optional(check_fn: Check) -> Check:
    """``check_fn`` for a value that may also be ``None`` (unset)."""

    def checked(name: str, value: Any) -> Any:
        return value if value is None else check_fn(name, value)

    return checked


def one_of(*allowed: object) -> Check:
    """A check: the value is one of ``allowed``."""

    def checked(name: str, value: Any) -> Any:
        return checks.one_of(name, value, allowed)

    return checked
