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

import copy
import logging
import pickle
from collections.abc import Sequence
from typing import Any

import yaml
from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

log = logging.getLogger(__name__)

try:  # private in Hydra 1.3; without them every job takes the full path
    from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
except ImportError:  # pragma: no cover - other Hydra versions
    ConfigLoaderImpl = None  # type: ignore[assignment,misc]
    get_overrides_dirname = None  # type: ignore[assignment]


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
        base = self._bases.get(groups)
        if base is None:
            base = _Base(self._loader.load_sweep_config(self._master, list(groups)))
            self._bases[groups] = base
            self.stats["bases"] += 1
        cfg = base.copy()
        ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        job = cfg.hydra.job
        with open_dict(cfg.hydra):
            cfg.hydra.overrides.task = [o.input_line for o in parsed]
            dirname = job.config.override_dirname
            job.override_dirname = get_overrides_dirname(
                overrides=parsed,
                kv_sep=dirname.kv_sep,
                item_sep=dirname.item_sep,
                exclude_keys=dirname.exclude_keys,
            )
        OmegaConf.copy_cache(from_config=self._master, to_config=cfg)
        self.stats["fast"] += 1
        return ComposedJob(cfg, base, values)

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


# The sections of the hydra node that differ between the jobs of one base: `overrides.task` and
# `job.override_dirname` (set by compose_job), `job.id`, `job.num` and `runtime.output_dir` (set
# by the launch). Value overrides never touch the hydra node (`hydra.*` ones take the full path).
JOB_SECTIONS = ("overrides", "job", "runtime")


class _Base:
    """A composed config for one list of group overrides, copied for each job; and (made on first
    use) its task part, the config without the hydra node, copied for each job's task config, and
    the YAML of its hydra sections that are the same in every job."""

    def __init__(self, config: DictConfig) -> None:
        self.config = config
        self._pickled = pickle.dumps(config)
        self._task_pickled: bytes | None = None
        self._sections: dict[str, str] | None = None

    def hydra_sections(self) -> dict[str, str]:
        """Each section of the hydra node as hydra.yaml's lines for it."""
        if self._sections is None:
            hydra = _container(self.config.hydra)
            self._sections = {key: _section_yaml(key, value) for key, value in hydra.items()}
        return self._sections

    def copy(self) -> DictConfig:
        return pickle.loads(self._pickled)

    def task_copy(self) -> DictConfig:
        if self._task_pickled is None:
            self._task_pickled = pickle.dumps(without_hydra(self.config))
        return pickle.loads(self._task_pickled)


class ComposedJob:
    """A job's composed config, and how to make its task config (`task_config`) cheaply."""

    def __init__(
        self, config: DictConfig, base: _Base | None = None, values: list[Override] | None = None
    ) -> None:
        self.config = config
        self._base = base
        self._values = values

    def hydra_yaml(self) -> str:
        """The job's `.hydra/hydra.yaml`: `OmegaConf.to_yaml` of its hydra node (interpolations
        kept). For a job composed from a base, only the sections a job changes are dumped anew
        (the whole file takes ~4 ms, the largest per-job cost of a big sweep)."""
        if self._base is None:
            return _dump({"hydra": _container(self.config.hydra)})
        sections = self._base.hydra_sections()
        hydra = self.config.hydra
        job = {
            key: _section_yaml(key, _container(hydra[key])) for key in JOB_SECTIONS if key in hydra
        }
        return "hydra:\n" + "".join(job.get(key, text) for key, text in sections.items())

    def task_config(self) -> DictConfig:
        """`config` without its hydra node, as `run_job` makes it (deepcopy, delete `hydra`).

        For a job composed from a base, the same value overrides are applied to a copy of the
        base's task part instead (no copy of the large hydra node); should that raise (an
        override that has to resolve an interpolation into the hydra node), the plain way."""
        if self._base is not None and self._values is not None:
            try:
                task = self._base.task_copy()
                ConfigLoaderImpl._apply_overrides_to_config(self._values, task)
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


def _section_yaml(key: str, value: Any) -> str:
    """The lines hydra.yaml holds for `hydra.<key>` (a section dumps the same alone as in the whole:
    the emitter formats a mapping's entries one after another)."""
    return _dump({"hydra": {key: value}}).removeprefix("hydra:\n")
