"""Composing a sweep job's config without re-running Hydra's whole composition per job.

Hydra's `ConfigLoader.load_sweep_config(master, overrides)` rebuilds the defaults list, loads and
merges every config file and schema, then applies the overrides: about 0.1-0.2 s for kernellab,
many times the training of a small job. But a job's overrides mostly only set values
(`seed=3`, `optim.lr=0.1`, `+extra=1`, `~key`), and those are applied by Hydra *after*
composition, in order, by `ConfigLoaderImpl._apply_overrides_to_config`. Only overrides that
choose a config group (`optim=adam`, `+experiment=x`, `~group`) change what is composed.

So `SweepComposer` composes once per distinct list of group overrides (with Hydra's own
`load_sweep_config`, cached), and for each job copies that base (unpickling it: about 6x faster
than `copy.deepcopy` of an OmegaConf tree, and as independent), applies the job's value
overrides with the same Hydra function, and recomputes the three fields Hydra derives from the
overrides (`hydra.overrides.task`, `hydra.job.override_dirname`, the resolver cache). Anything it
does not recognise with certainty (a `hydra.*` override, a sweep, a package override, an
unparsable line, a Hydra without the private helpers used here) goes through
`load_sweep_config` unchanged, so errors are Hydra's own. Tests compare both paths.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import pickle
import re
from collections.abc import Sequence
from enum import Enum
from typing import Any

import yaml
from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import Container, DictConfig, OmegaConf, flag_override, open_dict, read_write
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ReadonlyConfigError

from ._private import ConfigLoaderImpl, apply_overrides, get_overrides_dirname, node, node_value

log = logging.getLogger(__name__)

# `key=value` or `+key=value`/`++key=value`, key a (dotted) name or group path: enough to tell a
# group choice from a value and which key a value sets, without Hydra's parser (planning only)
_SIMPLE_OVERRIDE = re.compile(r"(\+{0,2})([A-Za-z_][\w/-]*(?:\.[\w-]+)*)=(.*)", re.DOTALL)


class SweepComposer:
    """`compose(overrides)` == `config_loader.load_sweep_config(master, overrides)`, faster.

    `fast=False` (or a config loader this module doesn't know) always takes the full path.
    `stats` counts jobs per path and the base compositions made.
    """

    def __init__(self, config_loader: ConfigLoader, master: DictConfig, fast: bool = True) -> None:
        self._loader = config_loader
        self._master = master
        self._parser = OverridesParser.create()
        self._bases: dict[tuple[str, ...], _Base] = {}
        self.stats = {"fast": 0, "full": 0, "bases": 0}
        self._repo: Any = None
        self._groups: dict[str, bool] = {}  # key -> whether it names a config group
        self._planned: dict[tuple[tuple[str, ...], tuple[str, ...]], DictConfig] = {}
        if fast and ConfigLoaderImpl is not None and isinstance(config_loader, ConfigLoaderImpl):
            self._repo = self._group_repository()

    def _group_repository(self) -> Any:
        """The config repository Hydra composes from for this sweep (with `hydra.searchpath`),
        to tell a config-group override from a value override exactly as Hydra does."""
        try:
            hydra_overrides = list(self._master.hydra.overrides.hydra)
            _, repo = self._loader._parse_overrides_and_create_caching_repo(  # type: ignore[attr-defined]
                self._master.hydra.job.config_name, hydra_overrides
            )
            return repo
        except Exception as error:  # any surprise: no fast path, Hydra's behaviour intact
            log.debug("batched launcher: fast composition disabled (%s)", error)
            return None

    @property
    def fast(self) -> bool:
        """Whether jobs can take the fast path at all (else every job is Hydra's composition)."""
        return self._repo is not None

    def compose(self, overrides: Sequence[str]) -> DictConfig:
        return self.compose_job(overrides).config

    def compose_job(self, overrides: Sequence[str]) -> ComposedJob:
        overrides = list(overrides)
        split = self._split(overrides) if self._repo is not None else None
        if split is None:
            self.stats["full"] += 1
            return ComposedJob(self._loader.load_sweep_config(self._master, overrides))
        parsed, groups, values = split
        base = self._base(groups)
        cfg = base.copy()
        apply_overrides(values, cfg)
        composed = ComposedJob(cfg, base, values)
        dirname = cfg.hydra.job.config.override_dirname
        dirname = get_overrides_dirname(
            overrides=parsed,
            kv_sep=dirname.kv_sep,
            item_sep=dirname.item_sep,
            exclude_keys=dirname.exclude_keys,
        )
        composed.set_hydra(
            {
                "overrides": {"task": [o.input_line for o in parsed]},
                "job": {"override_dirname": dirname},
            }
        )
        OmegaConf.copy_cache(from_config=self._master, to_config=cfg)
        self.stats["fast"] += 1
        return composed

    def _base(self, groups: tuple[str, ...]) -> _Base:
        base = self._bases.get(groups)
        if base is None:
            base = _Base(self._loader.load_sweep_config(self._master, list(groups)))
            self._bases[groups] = base
            self.stats["bases"] += 1
        return base

    def planning_config(self, overrides: Sequence[str], keys: Sequence[str]) -> DictConfig:
        """The job's task config as far as `keys` (dotted) go, for sharing a batch out before it
        is composed: its base with only those value overrides applied that set one of `keys`, a
        node above one or below one. Jobs that agree on those get the same object (read it, don't
        change it): a thousand seeds of one grid point cost one copy. Overrides this can't read
        without Hydra's parser (`~key`, `key@package`, quoting aside) compose the job in full. A
        wrong guess costs speed, never correctness: each job is composed again where it runs."""
        split = self._plan_split(overrides, keys) if self._repo is not None else None
        if split is None:
            return self.compose_job(overrides).task_config()
        planned = self._planned.get(split)
        if planned is None:
            groups, values = split
            planned = self._base(groups).task_copy()
            if values:
                with contextlib.suppress(Exception):  # the job's own composition will say
                    apply_overrides(self._parser.parse_overrides(list(values)), planned)
            self._planned[split] = planned
        return planned

    def _plan_split(
        self, overrides: Sequence[str], keys: Sequence[str]
    ) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """(group overrides, value overrides that touch `keys`), read without the parser."""
        groups: list[str] = []
        values: list[str] = []
        for line in overrides:
            match = _SIMPLE_OVERRIDE.fullmatch(line)
            if match is None:
                return None
            key, value = match[2], match[3]
            if key.startswith("hydra.") or key == "hydra":
                continue  # the hydra node: not the task config's
            is_group = self._groups.get(key)
            if is_group is None:
                is_group = self._groups[key] = bool(self._repo.group_exists(key))
            if is_group and not value.lstrip().startswith("{"):  # as _split: a dict is a value
                groups.append(line)
            elif any(key == k or k.startswith(key + ".") or key.startswith(k + ".") for k in keys):
                values.append(line)
        return tuple(groups), tuple(values)

    def _split(
        self, overrides: list[str]
    ) -> tuple[list[Override], tuple[str, ...], list[Override]] | None:
        """(all parsed, group overrides as given, value overrides), or None: take the full path."""
        try:
            parsed = self._parser.parse_overrides(overrides)
            groups: list[str] = []
            values: list[Override] = []
            for override in parsed:
                if (
                    override.is_sweep_override()
                    or override.is_hydra_override()
                    or override.package is not None
                ):
                    return None
                # Hydra's own rule (defaults_list.Overrides): a dict value is merged as config
                is_group = self._repo.group_exists(override.key_or_group)
                if is_group and not isinstance(override.value(), dict):
                    groups.append(override.input_line)
                else:
                    values.append(override)
        except Exception:  # let Hydra's composition report it its own way
            return None
        return parsed, tuple(groups), values


class _Base:
    """A composed config for one list of group overrides, copied for each job; and (made on first
    use) its task part, the config without the hydra node, copied for each job's task config, and
    the YAML of each entry of both."""

    def __init__(self, config: DictConfig) -> None:
        self.config = config
        self._pickled = pickle.dumps(config)
        self._task_pickled: bytes | None = None
        self._hydra: dict[str, Any] | None = None
        self._hydra_yaml: dict[str, str] | None = None
        self._hydra_section_yaml: dict[str, dict[str, str]] = {}
        self._task_yaml: dict[str, str] | None = None

    def hydra_section_entries(self, section: str) -> dict[str, str]:
        """Each entry of `hydra.<section>` as hydra.yaml's lines for it."""
        lines = self._hydra_section_yaml.get(section)
        if lines is None:
            values = self.hydra_entries()[0][section]
            lines = {key: _hydra_entry_yaml(section, {key: v}, 1) for key, v in values.items()}
            self._hydra_section_yaml[section] = lines
        return lines

    def hydra_entries(self) -> tuple[dict[str, Any], dict[str, str]]:
        """Each entry of the hydra node as a container, and as hydra.yaml's lines for it."""
        if self._hydra is None or self._hydra_yaml is None:
            self._hydra = _container(self.config.hydra)
            self._hydra_yaml = {key: _hydra_entry_yaml(key, v) for key, v in self._hydra.items()}
        return self._hydra, self._hydra_yaml

    def task_entries(self) -> dict[str, str]:
        """Each top-level entry of the task config as config.yaml's lines for it."""
        if self._task_yaml is None:
            task = self.task_copy()
            self._task_yaml = {key: _dump({key: _entry(task, key)}) for key in task}
        return self._task_yaml

    def copy(self) -> DictConfig:
        return pickle.loads(self._pickled)

    def task_copy(self) -> DictConfig:
        if self._task_pickled is None:
            self._task_pickled = pickle.dumps(without_hydra(self.config))
        return pickle.loads(self._task_pickled)


class ComposedJob:
    """A job's composed config, and how to make its task config and its `.hydra/` files cheaply.

    A job composed from a base differs from it only in its value overrides' keys and the entries
    of the hydra node set with `set_hydra` (value overrides never touch the hydra node: `hydra.*`
    ones take the full path), so its YAML files are the base's, with those entries dumped anew
    (dumping a whole config takes ~1-4 ms, the largest per-job cost of a big sweep otherwise).
    """

    def __init__(
        self, config: DictConfig, base: _Base | None = None, values: list[Override] | None = None
    ) -> None:
        self.config = config
        self._base = base
        self._values = values
        self._hydra_set: dict[str, dict[str, Any]] = {}  # hydra.<section>.<key> set per job

    def set_hydra(self, values: dict[str, dict[str, Any]]) -> None:
        """Set `hydra.<section>.<key>` to `values[section][key]` in this job's config (converted
        as its schema says)."""
        hydra = self.config.hydra
        try:  # the schema's keys of a node not yet read-only: no flags to override
            self._set(hydra, values)
        except (ReadonlyConfigError, ConfigAttributeError, ConfigKeyError):
            # overriding the flags costs ~0.1 ms: each change walks the hydra node
            with flag_override(hydra, ["readonly", "struct"], [False, False]):
                self._set(hydra, values)

    def _set(self, hydra: DictConfig, values: dict[str, dict[str, Any]]) -> None:
        for section, entries in values.items():
            node = hydra[section]
            for key, value in entries.items():
                node[key] = value
                self._hydra_set.setdefault(section, {})[key] = _entry(node, key)

    def hydra_entry(self, key: str) -> Any:
        """`hydra.<key>` as a container with its interpolations (the base's own, shared: read
        it, don't change it), or None for a job composed without a base."""
        if self._base is None or key in self._hydra_set:
            return None
        return self._base.hydra_entries()[0].get(key)

    def hydra_yaml(self) -> str:
        """The job's `.hydra/hydra.yaml`: `OmegaConf.to_yaml` of its hydra node (interpolations
        kept)."""
        if self._base is None:
            return _dump({"hydra": _container(self.config.hydra)})
        lines = self._base.hydra_entries()[1]
        changed = {section: self._section_yaml(section) for section in self._hydra_set}
        return "hydra:\n" + "".join(changed.get(key, text) for key, text in lines.items())

    def _section_yaml(self, section: str) -> str:
        """hydra.yaml's lines for `hydra.<section>`, only the entries this job set dumped anew."""
        assert self._base is not None
        values = self._hydra_set[section]
        base = self._base.hydra_section_entries(section)
        entries = {key: _hydra_entry_yaml(section, {key: v}, 1) for key, v in values.items()}
        added = [text for key, text in entries.items() if key not in base]  # appended, as set
        lines = [entries.get(key, text) for key, text in base.items()]
        return f"  {section}:\n" + "".join(lines + added)

    def task_yaml(self, task: DictConfig) -> str:
        """The job's `.hydra/config.yaml`, `OmegaConf.to_yaml(task)`; `task` is its task config."""
        if self._base is None or self._values is None:
            return to_yaml(task)
        lines = self._base.task_entries()
        changed = {o.key_or_group.split(".")[0] for o in self._values}
        return "".join(
            lines[key] if key in lines and key not in changed else _dump({key: _entry(task, key)})
            for key in task
        )

    def overrides_yaml(self) -> str:
        """The job's `.hydra/overrides.yaml`."""
        task = self._hydra_set.get("overrides", {}).get("task")
        return _dump(task) if task is not None else to_yaml(self.config.hydra.overrides.task)

    def task_config(self) -> DictConfig:
        """`config` without its hydra node, as `run_job` makes it (deepcopy, delete `hydra`).

        For a job composed from a base, the same value overrides are applied to a copy of the
        base's task part instead (no copy of the large hydra node); should that raise (an
        override that has to resolve an interpolation into the hydra node), the plain way."""
        if self._base is not None and self._values is not None:
            try:
                task = self._base.task_copy()
                apply_overrides(self._values, task)
            except Exception:
                pass
            else:
                OmegaConf.copy_cache(from_config=self.config, to_config=task)
                return task
        return without_hydra(self.config)


def without_hydra(config: DictConfig) -> DictConfig:
    task = copy.deepcopy(config)
    with read_write(task), open_dict(task):
        del task["hydra"]
    return task


def to_yaml(cfg: Any) -> str:
    """What `OmegaConf.to_yaml(cfg)` gives (interpolations kept), through libyaml: OmegaConf's
    pure-Python dumper takes ~25 ms for hydra.yaml."""
    return _dump(_container(cfg))


def _container(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)


def _dump(container: Any) -> str:
    return yaml.dump(container, Dumper=_DUMPER, sort_keys=False, allow_unicode=True)


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _entry(cfg: DictConfig, key: str) -> Any:
    """`OmegaConf.to_container(cfg)[key]` (interpolations kept), without converting the rest."""
    entry = node(cfg, key)
    if isinstance(entry, Container):
        return _container(entry)
    value = node_value(entry)
    return value.name if isinstance(value, Enum) else value


def _hydra_entry_yaml(key: str, value: Any, depth: int = 0) -> str:
    """The lines hydra.yaml holds for `hydra.<key>` (depth 0), or for the one entry of the
    mapping `value` in `hydra.<key>` (depth 1). An entry dumps the same alone as in the whole (the
    emitter formats a mapping's entries one after another), as does a top-level entry of
    config.yaml."""
    text = _dump({"hydra": {key: value}}).removeprefix("hydra:\n")
    return text.removeprefix(f"  {key}:\n") if depth else text
