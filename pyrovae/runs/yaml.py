"""Config files: YAML read safely, its plain scalars resolved as YAML 1.2's core schema does,
without repeated keys."""

import math
import os
import re
import stat
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import yaml

from .. import checks


class Loader(yaml.SafeLoader):
    """PyYAML's safe loader with the plain scalars of YAML 1.2's core schema (as JSON reads
    them), not YAML 1.1's:

    * numbers: integers ``[-+]?[0-9]+`` (also ``0x1F``, ``0o17``), floats with a dot and/or an
      exponent (``1e-3`` and ``5E4`` included), ``.inf``, ``-.inf``, ``.nan``; no base 60
      (``1:10`` is text, not 70), no ``_`` separators, no octal ``017`` (it is 17);
    * ``true``/``false`` (also ``True``, ``TRUE``…) are the only booleans (``yes``, ``on`` are
      text), ``null``/``~``/nothing the only null; dates are text;
    * a mapping that holds a key twice is refused (:class:`DuplicateKeyError`) instead of the
      last value silently winning.
    """

    yaml_implicit_resolvers = {}


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: object, first: int, second: int) -> None:
        super().__init__(f"key {key!r} appears twice (lines {first} and {second}); keep one")


_CORE = (  # YAML 1.2.2, 10.3.2 (core schema): tag, pattern, first characters
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+0123456789."),
    ),
)
for _tag, _pattern, _first in _CORE:
    Loader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


def _scalar(kind: Callable[[str], Any]) -> Callable[[Loader, yaml.ScalarNode], Any]:
    def construct(loader: Loader, node: yaml.ScalarNode) -> Any:
        text = loader.construct_scalar(node)
        try:
            return kind(text)
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None, None, f"not a YAML 1.2 {kind.__name__[1:]}", node.start_mark
            ) from None

    return construct


def _int(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    base = {"0o": 8, "0x": 16}.get(digits[:2], 10)
    return sign * int(digits[2:] if base != 10 else digits, base)


def _float(text: str) -> float:
    special = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}
    if text.lower() in special:
        return special[text.lower()]
    if not re.fullmatch(_CORE[3][1], text):
        raise ValueError(text)
    return float(text)


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(text)
    return text.lower() == "true"


Loader.add_constructor("tag:yaml.org,2002:int", _scalar(_int))
Loader.add_constructor("tag:yaml.org,2002:float", _scalar(_float))
Loader.add_constructor("tag:yaml.org,2002:bool", _scalar(_bool))


def _mapping(loader: Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    lines: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            continue  # construct_mapping refuses it below
        if key in lines:
            raise DuplicateKeyError(key, lines[key], key_node.start_mark.line + 1)
        lines[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


Loader.add_constructor("tag:yaml.org,2002:map", _mapping)


def load_yaml(text: str, what: str) -> Any:
    """The value in YAML ``text`` (read by :class:`Loader`); ``ValueError`` naming ``what`` (e.g.
    ``config file run.yaml``) and the line when it is not valid YAML or repeats a key."""
    try:
        value = yaml.load(text, Loader=Loader)  # noqa: S506 (Loader is a SafeLoader)
    except DuplicateKeyError as err:
        raise ValueError(f"{what}: {err}") from None
    except RecursionError:
        raise ValueError(f"{what} is nested too deep to be read") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ValueError(f"{what} is not valid YAML{at}") from None
    return checks.config_shape(what, value)


def read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping in a YAML (or JSON) config file; ``-`` in keys becomes ``_``. Errors name the
    file and the line, never its contents."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {path} does not exist") from None
    except OSError as err:
        raise ValueError(f"config file {path} cannot be read ({err.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(
            f"config file {path} is not a regular file (a folder or a device); give a YAML file"
        )
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ValueError(f"config file {path} cannot be read ({err.strerror})") from None
    return read_mapping(data, path)


def read_mapping(data: bytes, path: str | os.PathLike[str]) -> dict[str, Any]:
    """The config mapping in the bytes ``data`` read from ``path``."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise ValueError(
            f"config file {path} is not text; write one 'key: value' per line"
        ) from None
    try:
        values = load_yaml(text, f"config file {path}")
    except ValueError as err:
        raise ValueError(f"{err}; write one 'key: value' per line") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must hold a mapping of keys to values")
    bad = [k for k in values if not isinstance(k, str)]
    if bad:
        raise ValueError(f"config file {path}: key {bad[0]!r} is not a name; keys are words")
    return {key.replace("-", "_"): value for key, value in values.items()}
