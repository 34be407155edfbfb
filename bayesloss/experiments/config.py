"""Sweep configs: TOML → a validated :class:`SweepConfig`, every problem named in one message.

A config has three sections; any value written as a list is swept and the grid is the product
of all lists (see :func:`bayesloss.experiments.grid.expand`)::

    [sweep]
    name = "map_vs_mle"
    seeds = [0, 1, 2]
    comparison = "map_vs_mle"      # which figure the report draws

    [data]
    generator = "linear"           # or: dataset = "diabetes", test_fraction = 0.25
    n = [50, 200, 1000]
    d = 10
    noise = 1.0
    noise_family = "gaussian"      # the family that generates y
    outliers = 0.0                 # share of gross errors in y
    test_n = 2000

    [model]
    likelihood = ["gaussian", "laplace"]   # the family that is fitted
    estimator = ["mle", "map"]
    prior = "normal"
    prior_scale = [0.1, 1.0]
    optimizer = "lbfgs"

Validation is declarative (pydantic models with ``extra="forbid"``); errors of every section are
collected and raised together as one :class:`ConfigError`.
"""

from __future__ import annotations

import hashlib
import re
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError,
                      model_validator)
from pydantic_core import PydanticCustomError

from ..families import FAMILIES
from ..priors import PRIORS

COMPARISONS = ("map_vs_mle", "regularization_path", "robustness", "classification")
#: data sets that :func:`bayesloss.data.load_dataset` ships
DATASETS = ("diabetes", "breast_cancer", "iris", "wine", "longley", "cpunish", "randhie")
#: likelihoods whose targets are classes or counts: their data must come from the same family
DISCRETE = ("bernoulli", "categorical", "poisson")

Family = Literal[tuple(sorted(FAMILIES))]
PriorName = Literal[tuple(sorted(PRIORS))]


class ConfigError(ValueError):
    """A sweep config is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str], source: str = "config"):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s), nothing was run:\n{lines}")


def _as_list(value):
    # a scalar is a one-point sweep; an explicit empty list stays empty and fails min_length
    return value if isinstance(value, list) else [value]


def _scalar(value):
    if isinstance(value, list):
        raise PydanticCustomError("scalar_required",
                                  "a single value is required here, not a list {value}",
                                  {"value": value})
    return value


def Sweep(item) -> Any:
    """A swept key: one value or a non-empty list of values, each validated as ``item``."""
    return Annotated[list[item], BeforeValidator(_as_list), Field(min_length=1)]


def Scalar(item) -> Any:
    """A key that takes exactly one value (a list is an error, not a sweep)."""
    return Annotated[item, BeforeValidator(_scalar)]


PosInt = Annotated[int, Field(gt=0)]
PosFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]
NoiseScale = Union[PosFloat, Literal["learned"]]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class SweepSection(_Section):
    """``[sweep]``: the name, the seeds (each run's data and fit seed) and the comparison."""

    name: Scalar(str) = "sweep"
    seeds: Sweep(Annotated[int, Field(ge=0)]) = [0]
    comparison: Scalar(Literal[COMPARISONS]) = "map_vs_mle"


class DataSection(_Section):
    """``[data]``: seeded synthetic data (``generator = "linear"``) or a shipped data set.

    Synthetic: :func:`bayesloss.data.make_synthetic` draws ``n + test_n`` rows with the run's
    seed from ``noise_family`` (so train and held-out rows share the true parameters);
    ``scale_range`` spreads the columns' standard deviations (default: all 1, so one prior scale
    suits every weight). Shipped: ``dataset`` with a seeded ``test_fraction`` split.
    """

    generator: Scalar(Literal["linear"]) = "linear"
    dataset: Scalar(Optional[Literal[DATASETS]]) = None
    test_fraction: Scalar(Annotated[float, Field(gt=0, lt=1)]) = 0.25
    n: Sweep(PosInt) = [200]
    d: Sweep(PosInt) = [5]
    noise: Sweep(PosFloat) = [1.0]
    noise_family: Sweep(Family) = ["gaussian"]
    noise_df: Sweep(PosFloat) = [4.0]
    outliers: Sweep(Fraction) = [0.0]
    test_n: Scalar(PosInt) = 2000
    scale_range: tuple[PosFloat, PosFloat] = (1.0, 1.0)  # one [low, high] pair, not swept

    @model_validator(mode="after")
    def _one_source(self):
        synthetic_only = {"n", "d", "noise", "noise_family", "noise_df", "outliers", "test_n",
                          "scale_range"}
        if self.dataset is not None and self.model_fields_set & synthetic_only:
            raise ValueError(
                f"dataset = {self.dataset!r} takes no synthetic-data keys; remove "
                f"{sorted(self.model_fields_set & synthetic_only)}")
        if self.scale_range[0] > self.scale_range[1]:
            raise ValueError(f"scale_range must be [low, high]; got {list(self.scale_range)}")
        return self


class ModelSection(_Section):
    """``[model]``: what is fitted. ``noise_scale = "learned"`` or a fixed σ / b."""

    likelihood: Sweep(Family) = ["gaussian"]
    estimator: Sweep(Literal["mle", "map"]) = ["mle", "map"]
    prior: Sweep(PriorName) = ["normal"]
    prior_scale: Sweep(PosFloat) = [1.0]
    noise_scale: Sweep(NoiseScale) = ["learned"]
    df: Sweep(PosFloat) = [4.0]
    prior_df: Scalar(PosFloat) = 3.0
    fit_intercept: Scalar(bool) = True
    optimizer: Scalar(Literal["lbfgs", "adam"]) = "lbfgs"
    max_iter: Scalar(PosInt) = 1000
    reference: Scalar(bool) = True


class SweepConfig(_Section):
    """A whole sweep config (see the module docstring)."""

    sweep: SweepSection = SweepSection()
    data: DataSection = DataSection()
    model: ModelSection = ModelSection()

    @model_validator(mode="after")
    def _compatible(self):
        if self.data.dataset is not None:
            return self
        bad = sorted({(lik, src) for lik in self.model.likelihood for src in self.data.noise_family
                      if (lik in DISCRETE or src in DISCRETE) and lik != src})
        if bad:
            raise ValueError(
                "classes and counts must be fitted by the family that generated them; "
                "incompatible (likelihood, noise_family) pairs: "
                + ", ".join(f"({a}, {b})" for a, b in bad))
        return self

    def digest(self) -> str:
        """A hash of the validated config (defaults filled in): the store's identity."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _describe(err: dict) -> str:
    # union members and validator wrappers appear in the location ("constrained-float",
    # "literal['learned']"); the user wrote section.key[.index]
    loc = [p for p in err["loc"] if not re.search(r"[\[\-]", str(p))]
    where = ".".join(str(p) for p in loc)
    if err["type"] == "extra_forbidden":
        section = loc[0] if len(loc) > 1 else None
        model = {"sweep": SweepSection, "data": DataSection, "model": ModelSection}.get(
            section, SweepConfig)
        scope = f"[{section}]" if section else "a config"
        return f"{where}: unknown key; valid keys in {scope} are {sorted(model.model_fields)}"
    if err["type"] == "too_short":
        return f"{where}: empty list, so the grid is empty (give at least one value)"
    if err["type"] == "scalar_required" or "input" not in err or isinstance(err["input"], dict):
        return f"{where}: {err['msg']}"
    return f"{where}: {err['msg']} (got {err['input']!r})"


def validate_config(raw: dict, source: str = "config") -> SweepConfig:
    """Validate a config given as a dict (parsed TOML); raise :class:`ConfigError` naming
    every problem."""
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            if err["loc"] and err["loc"][-1] == "literal['learned']":
                continue  # noise_scale: one message per value, not one per union member
            if "constrained-float" in err["loc"]:
                err = {**err, "msg": err["msg"] + " (or the string 'learned')"}
            problems.append(_describe(err))
        raise ConfigError(list(dict.fromkeys(problems)), source) from None


def apply_overrides(raw: dict, overrides) -> dict:
    """``["data.n=[20, 50]", …]`` → ``raw`` with those values replaced (TOML syntax)."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    problems = []
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not (sep and dot and section and name):
            problems.append(f"override {item!r}: write SECTION.KEY=VALUE, e.g. data.n=[20, 50]")
            continue
        try:
            parsed = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError as exc:
            problems.append(f"override {item!r}: the value is not TOML ({exc})")
            continue
        raw.setdefault(section, {})
        if isinstance(raw[section], dict):
            raw[section][name] = parsed
    if problems:
        raise ConfigError(problems, "overrides")
    return raw


def load_config(path, overrides=()) -> SweepConfig:
    """Read and validate a TOML sweep config, after ``overrides`` (see
    :func:`apply_overrides`); raise :class:`ConfigError` naming every problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], str(path)) from None
    return validate_config(apply_overrides(raw, overrides), str(path))
