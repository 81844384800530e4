"""The search space of ``[search]``: what a trial samples, and the run settings its values give."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import attrs
import optuna

from evsearch.settings import SearchSettings
from evtrain.settings import RunSettings

Kind = Literal["log", "float", "int", "categorical"]


@attrs.frozen
class Dimension:
    """One searched setting: a range (``low``..``high``) or a list of ``choices``."""

    name: str
    kind: Kind
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()

    @property
    def fixed(self) -> bool:
        """True when the user narrowed it to a single value (applied to every trial, not sampled)."""
        return len(self.choices) == 1 if self.kind == "categorical" else self.low == self.high

    @property
    def fixed_value(self) -> Any:
        """The single value of a fixed dimension."""
        if self.kind == "categorical":
            return self.choices[0]
        return int(self.low) if self.kind == "int" else float(self.low)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` lies inside this dimension."""
        if self.kind == "categorical":
            return value in self.choices
        if self.kind == "int" and int(value) != value:
            return False
        return self.low <= value <= self.high and not (isinstance(value, float) and math.isnan(value))

    def suggest(self, trial: optuna.Trial) -> Any:
        """Sample this dimension in ``trial``."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high))
        return trial.suggest_float(self.name, self.low, self.high, log=self.kind == "log")


def dimensions(search: SearchSettings) -> tuple[Dimension, ...]:
    """Every searched setting, in a stable order (the order of the trials table)."""
    return (
        Dimension("learning_rate", "log", search.learning_rate_min, search.learning_rate_max),
        Dimension("batch_size", "categorical", choices=tuple(dict.fromkeys(search.batch_size))),
        Dimension("epochs", "int", search.epochs_min, search.epochs_max),
        Dimension("warmup_ratio", "float", search.warmup_ratio_min, search.warmup_ratio_max),
        Dimension("max_length", "categorical", choices=tuple(dict.fromkeys(search.max_length))),
        Dimension("doc_stride", "categorical", choices=tuple(dict.fromkeys(search.doc_stride))),
    )


def fixed_values(search: SearchSettings) -> dict[str, Any]:
    """The dimensions narrowed to one value, with that value."""
    return {d.name: d.fixed_value for d in dimensions(search) if d.fixed}


def suggest(trial: optuna.Trial, search: SearchSettings) -> dict[str, Any]:
    """All six values for ``trial``: sampled ones recorded as its params, fixed ones added as they are."""
    return {d.name: d.fixed_value if d.fixed else d.suggest(trial) for d in dimensions(search)}


def apply(base: RunSettings, values: Mapping[str, Any]) -> RunSettings:
    """``base`` with the searched values in place (validated as any settings are: a bad value raises SettingsError)."""
    train_keys = {"learning_rate", "batch_size", "epochs", "warmup_ratio"}
    feature_keys = {"max_length", "doc_stride"}
    unknown = set(values) - train_keys - feature_keys
    if unknown:
        raise ValueError(f"not a searched setting: {', '.join(sorted(unknown))}")
    return base.with_changes({f"{'train' if k in train_keys else 'features'}.{k}": v for k, v in values.items()}, source="search space")


def current_values(base: RunSettings) -> dict[str, Any]:
    """The six searched settings as ``base`` has them (the defaults of settings.toml)."""
    t, f = base.train, base.features
    return {
        "learning_rate": t.learning_rate,
        "batch_size": t.batch_size,
        "epochs": t.epochs,
        "warmup_ratio": t.warmup_ratio,
        "max_length": f.max_length,
        "doc_stride": f.doc_stride,
    }


def baseline_params(search: SearchSettings, base: RunSettings) -> tuple[dict[str, Any], list[str]]:
    """The params of a trial that reproduces ``base``: the sampled dimensions whose base value lies in the space.

    Returns the params and the names of the dimensions whose base value lies outside the space (the
    sampler chooses those, so the trial is then only close to the defaults).
    """
    current = current_values(base)
    params, outside = {}, []
    for d in dimensions(search):
        if d.fixed:
            continue
        if d.contains(current[d.name]):
            params[d.name] = current[d.name]
        else:
            outside.append(d.name)
    return params, outside
