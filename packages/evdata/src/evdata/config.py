"""Settings plumbing shared by every package: one cattrs converter, TOML in and out, overrides.

Each package owns the attrs class of its own ``settings.toml`` table; this module only knows how to
turn TOML text into those classes (extra keys forbidden, every problem reported at once, each as
``section.key: message``) and back.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, get_args

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


def _format_cattrs_error(path: str, exc: BaseException, typ: Any = None) -> list[str]:
    """Flatten a cattrs error tree into ``section.key: message`` lines (our own checks included)."""
    if isinstance(exc, SettingsError):
        return [f"{path}.{p}" for p in exc.problems]
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return [f"{path}.{key}: unknown key" for key in sorted(exc.extra_fields)]
    if isinstance(exc, cattrs.BaseValidationError):
        lines: list[str] = []
        for inner in exc.exceptions:
            note = next((n for n in getattr(inner, "__notes__", ()) if hasattr(n, "name") or hasattr(n, "index")), None)
            name = getattr(note, "name", None)
            index = getattr(note, "index", None)
            sub = f"{path}.{name}" if name is not None else f"{path}[{index}]" if index is not None else path
            lines.extend(_format_cattrs_error(sub, inner, getattr(note, "type", None)))
        return lines
    if isinstance(exc, _BadValue):
        return [f"{path}: {exc}"]
    if type(exc).__name__ == "CattrsError" and " not in literal " in str(exc):
        value, _, literal = str(exc).partition(" not in literal ")
        choices = ", ".join(repr(a) for a in get_args(typ)) if typ is not None else literal
        return [f"{path}: must be one of {choices}, got {value!r}"]
    return [f"{path}: {format_exception(exc, typ)}"]


def _second_pass(name: str, table: Mapping[str, Any], cls: type, found: list[str]) -> list[str]:
    """After type errors, check the rest of the table too (ranges, cross-field), so all problems come at once."""
    bad = {line.split(":", 1)[0].removeprefix(f"{name}.") for line in found}
    if not bad or not any("." not in b for b in bad):
        return []
    rest = {k: v for k, v in table.items() if k not in bad}
    try:
        converter.structure(rest, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        return [line for line in _format_cattrs_error(name, exc) if line not in found]
    return []


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
        try:
            out[name] = converter.structure(table, cls)
        except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
            found = _format_cattrs_error(name, exc)
            problems.extend(found)
            # Type errors stop cattrs before the class's own checks run; run those on the rest of the table.
            if not (isinstance(exc, SettingsError) or all(isinstance(e, SettingsError) for e in getattr(exc, "exceptions", ()))):
                problems.extend(_second_pass(name, table, cls, found))
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
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        lines = _format_cattrs_error("$", exc, cls)
        raise RecordError(f"{source}: does not match {getattr(cls, '__name__', cls)}: " + "; ".join(lines)) from None


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


def evolve_sections(
    sections: Mapping[str, Any],
    changes: Mapping[str, Any],
    schema: Mapping[str, type],
    *,
    known_sections: Iterable[str] = (),
    source: str = "command line",
) -> dict[str, Any]:
    """Settings objects with ``changes`` (``section.key -> value``) applied, checked like settings.toml itself.

    Each changed table is turned back into data, updated and structured again through the one
    converter, so a changed value gets the same type conversion, range checks and cross-field checks
    (all problems at once, each naming ``section.key``) as a value read from the file.
    """
    grouped = group_changes(changes, source)
    raw = {name: {**converter.unstructure(value), **grouped.get(name, {})} for name, value in sections.items()}
    for name, table in grouped.items():
        raw.setdefault(name, table)
    return structure_sections(raw, schema, known_sections=known_sections, source=source)
