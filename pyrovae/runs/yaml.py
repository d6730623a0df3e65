"""Config files: YAML read safely, with exponent numbers and without repeated keys."""

import os
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml


class Loader(yaml.SafeLoader):
    """PyYAML's safe loader (YAML 1.1) with two changes users expect:

    * numbers in exponent notation without a dot (``1e-3``, ``5E4``) are numbers, as in YAML
      1.2 and JSON, not text;
    * a mapping that holds a key twice is refused (:class:`DuplicateKeyError`) instead of the
      last value silently winning.
    """


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: object, first: int, second: int) -> None:
        super().__init__(f"key {key!r} appears twice (lines {first} and {second}); keep one")


_EXPONENT = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$")
Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT, list("-+0123456789."))


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
        return yaml.load(text, Loader=Loader)  # noqa: S506 (Loader is a SafeLoader)
    except DuplicateKeyError as err:
        raise ValueError(f"{what}: {err}") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ValueError(f"{what} is not valid YAML{at}") from None


def read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping in a YAML (or JSON) config file; ``-`` in keys becomes ``_``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        text = path.read_text()
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
