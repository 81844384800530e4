"""Settings plumbing shared by every package: one cattrs converter, TOML in and out, overrides.

Each package owns the attrs class of its own ``settings.toml`` table; this module only knows how to
turn TOML text into those classes (extra keys forbidden, every problem reported at once, each as
``section.key: message``) and back.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import attrs
import cattrs
import tomli_w
from cattrs.preconf.tomllib import make_converter
from cattrs.v import format_exception

converter = make_converter(forbid_extra_keys=True)
# Tuples unstructure to lists for TOML; structure them back from lists.
converter.register_unstructure_hook(Path, str)
converter.register_structure_hook(Path, lambda v, _: Path(v))


class _BadValue(ValueError):
    """A value our own structure hooks reject; its message is shown as is after ``section.key:``."""


def _strict_bool(value: Any, _: type) -> bool:
    # The preconf converter would take bool("no") == True; a setting is true or false, nothing else.
    if isinstance(value, bool):
        return value
    raise _BadValue(f"expected true or false, got {value!r}")


converter.register_structure_hook(bool, _strict_bool)


def _strict_int(value: Any, _: type) -> int:
    # Not bool (a bool is an int in Python), not "7", not 1.5: an integer setting is an integer.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _BadValue(f"expected an integer, got {value!r}")


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _BadValue(f"expected a number, got {value!r}")


def _strict_str(value: Any, _: type) -> str:
    if isinstance(value, str):
        return value
    raise _BadValue(f"expected a string, got {value!r}")


def _int_keyed(value: Any, typ: Any) -> dict[int, Any]:
    # JSON object keys are always text: a ``dict[int, X]`` record field reads "1" as the key 1.
    if not isinstance(value, Mapping):
        raise _BadValue(f"expected an object, got {value!r}")
    item = get_args(typ)[1]
    out = {}
    for key, inner in value.items():
        if isinstance(key, str) and key.lstrip("-").isdigit():
            key = int(key)
        out[_strict_int(key, int)] = converter.structure(inner, item)
    return out


converter.register_structure_hook(int, _strict_int)
converter.register_structure_hook_func(lambda t: get_origin(t) is dict and get_args(t)[:1] == (int,), _int_keyed)
converter.register_structure_hook(float, _strict_float)
converter.register_structure_hook(str, _strict_str)


class SettingsError(ValueError):
    """Invalid settings: ``problems`` holds one line per problem, each naming ``section.key``."""

    def __init__(self, problems: Iterable[str], source: str = "settings") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n" + "\n".join(f"  - {p}" for p in self.problems))


def check(problems: list[str], ok: bool, message: str) -> None:
    """Append ``message`` to ``problems`` unless ``ok`` (for collecting cross-field checks)."""
    if not ok:
        problems.append(message)


def parse_override(item: str) -> tuple[str, str, Any]:
    """Parse ``section.key=value``; the value is read as TOML, falling back to a plain string."""
    if "=" not in item:
        raise SettingsError([f"--set {item!r}: expected section.key=value"], "command line")
    dotted, raw = item.split("=", 1)
    parts = dotted.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise SettingsError([f"--set {item!r}: expected section.key=value (e.g. train.learning_rate=3e-5)"], "command line")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return parts[0], parts[1], value


# An attrs range validator's message: "'epochs' must be >= 1: 0" (ge/le/gt/lt) or "'mode' must be in (...) (got 'x')" (in_).
_ATTRS_RANGE = re.compile(r"^'(?P<name>\w+)' must be (?P<rule>[<>]=? \S+): (?P<value>.*)$")
_ATTRS_CHOICE = re.compile(r"^'(?P<name>\w+)' must be in (?P<choices>.*) \(got (?P<value>.*)\)$")


def validator_problem(exc: BaseException) -> tuple[str, str] | None:
    """``(field, "must be >= 1, got 0")`` from an attrs field validator's error; None for any other error."""
    if not isinstance(exc, ValueError) or not exc.args or not isinstance(exc.args[0], str):
        return None
    if isinstance(exc, SettingsError):
        return None
    text = exc.args[0]
    if m := _ATTRS_RANGE.match(text):
        return m["name"], f"must be {m['rule']}, got {m['value']}"
    if m := _ATTRS_CHOICE.match(text):
        choices = m["choices"].strip("()[]{}").rstrip(",")
        return m["name"], f"must be one of {choices}, got {m['value']}"
    return None


def _describe(exc: BaseException, typ: Any) -> str:
    """One problem, worded for a person (``format_exception`` for ``cattrs.transform_error``)."""
    if isinstance(exc, _BadValue | SettingsError):
        return str(exc) if isinstance(exc, _BadValue) else "; ".join(exc.problems)
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return _UNKNOWN + ", ".join(sorted(exc.extra_fields))
    if type(exc).__name__ == "CattrsError" and " not in literal " in str(exc):
        value = str(exc).partition(" not in literal ")[0]
        choices = ", ".join(repr(a) for a in get_args(typ)) if typ is not None else "the allowed values"
        return f"must be one of {choices}, got {value!r}"
    found = validator_problem(exc)
    if found is not None:
        return found[1]
    return format_exception(exc, typ)


_UNKNOWN = "unknown key(s): "
_AT = re.compile(r"^(?P<message>.*) @ \$(?P<path>.*)$", re.S)


def _format_cattrs_error(path: str, exc: BaseException, typ: Any = None) -> list[str]:
    """A cattrs error tree as ``section.key: message`` lines, through ``cattrs.transform_error``.

    An error raised while the class itself is built (an attrs field validator, a cross-field
    ``SettingsError``) carries no field path in cattrs; the field is then read from the error.
    """
    lines: list[str] = []
    for line in cattrs.transform_error(exc, path="$", format_exception=_describe):
        m = _AT.match(line)
        message, where = (m["message"], m["path"]) if m else (line, "")
        if message.startswith(_UNKNOWN):
            lines.extend(f"{path}{where}.{key}: unknown key" for key in message.removeprefix(_UNKNOWN).split(", "))
        else:
            lines.append(f"{path}{where}: {message}")
    return [_name_whole_class_problem(line, exc) for line in lines]


def _name_whole_class_problem(line: str, exc: BaseException) -> str:
    # "train: must be >= 1, got 0" (a validator error reported on the class) -> "train.epochs: must be >= 1, got 0".
    inner = exc.exceptions if isinstance(exc, cattrs.BaseValidationError) else [exc]
    for e in inner:
        if isinstance(e, SettingsError):
            head = line.partition(":")[0]
            return "\n".join(f"{head}.{p}" for p in e.problems) if line.endswith("; ".join(e.problems)) else line
        found = validator_problem(e)
        if found is not None and line.endswith(found[1]):
            head = line.partition(":")[0]
            return f"{head}.{found[0]}: {found[1]}"
    return line


def _structure_table(name: str, table: Mapping[str, Any], cls: type) -> tuple[Any, list[str]]:
    """Structure one table, reporting every problem: after a bad value, the rest of the table is checked too.

    A key with a bad value (wrong type, out of range, unknown) is reported, dropped, and the table tried
    again, so the next bad key is reported now rather than after a fix. Cross-field checks
    (``SettingsError`` from the class) end the search; problems that only arise from a dropped key's
    default are not the user's and are not reported.
    """
    problems: list[str] = []
    rest = dict(table)
    dropped: set[str] = set()
    for _ in range(len(table) + 1):
        try:
            return converter.structure(rest, cls), problems
        except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
            found = [line for chunk in _format_cattrs_error(name, exc, cls) for line in chunk.split("\n")]
            keys = {line: line.partition(":")[0].removeprefix(f"{name}.").split(".")[0].split("[")[0] for line in found}
            problems.extend(line for line in found if line not in problems and keys[line] not in dropped)
            bad = set(keys.values()) & set(rest)
            if _cross_field_only(exc) or not bad:
                return None, problems
            dropped |= bad
            rest = {k: v for k, v in rest.items() if k not in bad}
    return None, problems


def _cross_field_only(exc: BaseException) -> bool:
    inner = exc.exceptions if isinstance(exc, cattrs.BaseValidationError) else [exc]
    return all(isinstance(e, SettingsError) for e in inner)


def structure_sections(
    raw: Mapping[str, Any],
    schema: Mapping[str, type],
    *,
    overrides: Iterable[str] = (),
    known_sections: Iterable[str] = (),
    source: str = "settings.toml",
) -> dict[str, Any]:
    """Structure the tables named in ``schema`` from ``raw`` after applying ``--set`` overrides.

    Tables in ``known_sections`` but not in ``schema`` are accepted and ignored (they belong to
    another package); any other table is an error. Every problem is collected and raised once.
    """
    data: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in raw.items()}
    problems: list[str] = []
    allowed = set(schema) | set(known_sections)
    for item in overrides:
        section, key, value = parse_override(item)
        if section not in allowed:
            problems.append(f"{section}.{key}: unknown section {section!r} (known: {', '.join(sorted(allowed))})")
            continue
        data.setdefault(section, {})[key] = value
    for name in data:
        if name not in allowed:
            problems.append(f"{name}: unknown section (known: {', '.join(sorted(allowed))})")
    out: dict[str, Any] = {}
    for name, cls in schema.items():
        table = data.get(name, {})
        if not isinstance(table, Mapping):
            problems.append(f"{name}: expected a table")
            continue
        value, found = _structure_table(name, table, cls)
        problems.extend(found)
        if not found:
            out[name] = value
    if problems:
        raise SettingsError(problems, source)
    return out


def load_sections(
    path: str | Path,
    schema: Mapping[str, type],
    *,
    overrides: Iterable[str] = (),
    known_sections: Iterable[str] = (),
) -> dict[str, Any]:
    """Read a TOML file and structure the tables named in ``schema`` (see ``structure_sections``)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError([f"file not found: {path}"], str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError([f"not valid TOML: {exc}"], str(path)) from None
    return structure_sections(raw, schema, overrides=overrides, known_sections=known_sections, source=str(path))


def unstructure(value: Any) -> Any:
    """Settings object -> plain TOML-ready data (None values dropped, since TOML has no null)."""
    return _drop_none(converter.unstructure(value))


def _drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj


def dumps_sections(sections: Mapping[str, Any]) -> str:
    """Settings objects keyed by table name -> TOML text."""
    return tomli_w.dumps({name: unstructure(value) for name, value in sections.items()})


def validate_fields(instance: Any, checks: Iterable[tuple[bool, str]]) -> None:
    """Raise one ``SettingsError`` listing every failed ``(ok, "key: message")`` check."""
    problems = [msg for ok, msg in checks if not ok]
    if problems:
        raise SettingsError(problems, type(instance).__name__)


def evolve(value: Any, **changes: Any) -> Any:
    """``attrs.evolve`` re-exported, so callers override settings the same way everywhere."""
    return attrs.evolve(value, **changes)


# --- typed records in JSON files (run metrics, predictions, search trials, alignment cache) ----------------


class RecordError(ValueError):
    """A JSON record file that does not match its attrs class: names the file and every bad field."""


def to_data(value: Any) -> Any:
    """An attrs record (or a list of them) -> JSON-ready data, through the one converter."""
    return converter.unstructure(value)


def from_data(data: Any, cls: Any, source: str = "record") -> Any:
    """JSON data -> ``cls`` through the one converter; a mismatch is a ``RecordError`` naming ``source`` and each field."""
    name = _type_name(cls)
    expected = list if get_origin(cls) is list else dict
    if not isinstance(data, expected):
        raise RecordError(f"{source}: expected a JSON {'list' if expected is list else 'object'} ({name}), got {type(data).__name__}")
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, AttributeError) as exc:
        # Unknown keys first: a renamed field shows as one unknown key plus one missing field.
        lines = sorted(_format_cattrs_error("$", exc, cls), key=lambda line: not line.endswith("unknown key"))
        more = f"; ... and {len(lines) - _SHOWN} more" if len(lines) > _SHOWN else ""
        raise RecordError(f"{source}: does not match {name}: " + "; ".join(lines[:_SHOWN]) + more) from None


_SHOWN = 5  # problems named in a RecordError; the rest are counted


def _type_name(cls: Any) -> str:
    args = get_args(cls)
    return f"list[{args[0].__name__}]" if get_origin(cls) is list and args else getattr(cls, "__name__", str(cls))


def write_record(path: str | Path, value: Any) -> Path:
    """Write an attrs record (or a list of them) as indented JSON, atomically."""
    from evdata.atomic import atomic_write_json

    return atomic_write_json(path, to_data(value))


def read_record(path: str | Path, cls: Any) -> Any:
    """Read a JSON file written by ``write_record`` back into ``cls`` (e.g. ``RunMetrics`` or ``list[PredictionRecord]``)."""
    import json

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{path}: not readable JSON ({exc})") from None
    return from_data(data, cls, str(path))


def group_changes(changes: Mapping[str, Any], source: str = "command line") -> dict[str, dict[str, Any]]:
    """``{"train.epochs": 6}`` -> ``{"train": {"epochs": 6}}``; a key without one dot is an error naming it."""
    grouped: dict[str, dict[str, Any]] = {}
    problems = []
    for dotted, value in changes.items():
        parts = dotted.split(".")
        if len(parts) != 2 or not all(parts):
            problems.append(f"{dotted}: expected section.key")
            continue
        grouped.setdefault(parts[0], {})[parts[1]] = value
    if problems:
        raise SettingsError(problems, source)
    return grouped


def _from_text(value: Any, cls: type | None, key: str) -> Any:
    if not isinstance(value, str) or cls is None:
        return value
    if get_type_hints(cls).get(key) is str:
        return value
    try:
        return tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def evolve_sections(
    sections: Mapping[str, Any],
    changes: Mapping[str, Any],
    schema: Mapping[str, type],
    *,
    known_sections: Iterable[str] = (),
    source: str = "command line",
    from_text: bool = False,
) -> dict[str, Any]:
    """Settings objects with ``changes`` (``section.key -> value``) applied, checked like settings.toml itself.

    With ``from_text`` (values typed on a command line) a text value for a setting that is not text
    is read as a TOML value, as ``--set`` reads it: ``--epochs 6`` is the integer 6, ``--model 123`` stays text.

    Each changed table is turned back into data, updated and structured again through the one
    converter, so a changed value gets the same type conversion, range checks and cross-field checks
    (all problems at once, each naming ``section.key``) as a value read from the file.
    """
    grouped = group_changes(changes, source)
    if from_text:
        grouped = {name: {key: _from_text(value, schema.get(name), key) for key, value in table.items()} for name, table in grouped.items()}
    raw = {name: {**converter.unstructure(value), **grouped.get(name, {})} for name, value in sections.items()}
    for name, table in grouped.items():
        raw.setdefault(name, table)
    return structure_sections(raw, schema, known_sections=known_sections, source=source)
