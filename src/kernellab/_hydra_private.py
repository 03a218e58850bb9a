"""Every use of Hydra's private names in kernellab, in one place. (The batched launcher plugin,
which imports nothing from kernellab, keeps its own: see docs/architecture.md.)

Written for hydra-core 1.3 (`tests/test_private_apis.py` states the version and fails with a
clear message on another one).
"""

from __future__ import annotations

from typing import Any

# Why: a sweep's report expands the command line's sweep overrides into its jobs, exactly as
# Hydra's basic sweeper does (ranges, choices, globs). Hydra's public API has no function for it;
# `BasicSweeper.split_arguments` is a static method of the internal basic sweeper.
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from omegaconf import OmegaConf

WRITTEN_FOR = ("1.3",)  # hydra-core versions (major.minor)

__all__ = [
    "WRITTEN_FOR",
    "BasicSweeper",
    "composes_a_run_once",
    "help_fills_only_its_placeholders",
]


def help_fills_only_its_placeholders() -> None:
    """`--help` computes only what its template shows, and lists the app's config groups without
    walking Hydra's own.

    Why: `Hydra.get_help` fills every placeholder whatever the template holds, and listing config
    groups costs ~40 ms a group (each lookup copies the config sources): Hydra's own ~35 groups
    were listed twice, once for `$HYDRA_CONFIG_GROUPS` (our template doesn't show it) and once
    walked and filtered out of `$APP_CONFIG_GROUPS`: ~1.2 s of a 1.4 s `--help`. `--hydra-help`,
    whose template shows Hydra's groups, gets them as before. Idempotent.
    """
    import string

    from hydra._internal.hydra import Hydra

    if getattr(Hydra.get_help, "fills_only_its_placeholders", False):
        return

    def get_help(self: Hydra, help_cfg, cfg, args_parser, resolve: bool) -> str:
        template = string.Template(help_cfg.template)
        wanted = set(template.get_identifiers())
        fill = {
            "FLAGS_HELP": lambda: self.format_args_help(args_parser),
            "HYDRA_CONFIG_GROUPS": lambda: self.format_config_groups(_is_hydra_group),
            "APP_CONFIG_GROUPS": lambda: _app_config_groups(self),
            "CONFIG": lambda: OmegaConf.to_yaml(cfg, resolve=resolve),
        }
        return template.substitute({name: make() for name, make in fill.items() if name in wanted})

    get_help.fills_only_its_placeholders = True  # type: ignore[attr-defined]
    Hydra.get_help = get_help  # type: ignore[method-assign]


def _is_hydra_group(group: str) -> bool:
    return group == "hydra" or group.startswith("hydra/")


def _app_config_groups(hydra: Any) -> str:
    """Hydra's `format_config_groups` for the app's groups, with the top-level `hydra` group
    hidden from the walk (it only filtered it out afterwards)."""
    loader = hydra.config_loader
    hydra.config_loader = _WithoutHydraGroups(loader)
    try:
        return hydra.format_config_groups(lambda group: not _is_hydra_group(group))
    finally:
        hydra.config_loader = loader


class _WithoutHydraGroups:
    """A config loader whose top level lists no `hydra` group; everything else is the loader's."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def list_groups(self, parent_name: str) -> list[str]:
        groups = self._loader.list_groups(parent_name)
        return [g for g in groups if g != "hydra"] if parent_name == "" else groups

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def composes_a_run_once() -> None:
    """`python train.py` composes its config once, not twice (a sweep's own config too).

    Why: Hydra's `_run_hydra` asks `Hydra.get_mode` for the run mode, and `get_mode` composes the
    whole config (multirun mode, sweep overrides not checked) only to read `hydra.mode`; then
    `Hydra.run` (or `Hydra.multirun`) composes it again, its overrides checked, `hydra.mode=RUN`
    (`=MULTIRUN`) appended when the config's mode isn't that already: ~0.1-0.2 s of a 3 s run on
    2 cores. Here `get_mode` keeps its composition, and the next composition, when it is that
    one, is that config made what Hydra's would be: the overrides checked as Hydra checks them in
    that mode; an appended `hydra.mode` set and appended to `hydra.overrides.hydra` (the last
    override, as Hydra applies it). Sweep overrides play no part in a composition (Hydra skips
    them), and the only other difference between the modes is that a run refuses a config group
    left mandatory (`???`), which multirun mode skips: such a run, a composition that failed or
    any other call gets Hydra's own composition. Idempotent.
    """
    from hydra._internal.hydra import Hydra

    if getattr(Hydra.get_mode, "composes_a_run_once", False):
        return
    hydras_get_mode = Hydra.get_mode

    def get_mode(self: Hydra, config_name: str | None, overrides: list[str]) -> Any:
        loader = self.config_loader
        hydras_load = loader.load_configuration
        composed: list[Any] = []

        def kept(*args: Any, **kwargs: Any) -> Any:  # get_mode's composition, kept
            composed.append(hydras_load(*args, **kwargs))
            return composed[-1]

        loader.load_configuration = kept
        try:
            mode = hydras_get_mode(self, config_name, overrides)
        finally:
            del loader.load_configuration
        if len(composed) == 1:
            loader.load_configuration = _the_next_of(
                loader, hydras_load, config_name, list(overrides), composed[0]
            )
        return mode

    get_mode.composes_a_run_once = True  # type: ignore[attr-defined]
    Hydra.get_mode = get_mode  # type: ignore[method-assign]


def _all_groups_chosen(cfg: Any) -> bool:
    """No config group left mandatory (`???`): multirun mode skips one, Hydra's run refuses it."""
    choices = cfg.hydra.runtime.choices
    return not any(OmegaConf.is_missing(choices, group) for group in choices)


def _the_next_of(loader: Any, hydras_load: Any, name: str | None, base: list[str], cfg: Any) -> Any:
    """The loader's next `load_configuration` (only that one): `cfg`, composed by `get_mode` from
    `name` and `base`, made the config `Hydra.run` or `Hydra.multirun` asks for; anything else
    Hydra's own composition."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    def load_configuration(
        config_name: str | None,
        overrides: list[str],
        run_mode: RunMode,
        from_shell: bool = True,
        validate_sweep_overrides: bool = True,
    ) -> Any:
        del loader.load_configuration
        overrides = list(overrides)
        appended = overrides[len(base) :]
        mode_override = f"hydra.mode={run_mode.name}"
        if not (
            config_name == name
            and overrides[: len(base)] == base
            and appended in ([], [mode_override])
            and from_shell
            and validate_sweep_overrides
            and (run_mode == RunMode.MULTIRUN or _all_groups_chosen(cfg))
        ):
            return hydras_load(
                config_name=config_name,
                overrides=overrides,
                run_mode=run_mode,
                from_shell=from_shell,
                validate_sweep_overrides=validate_sweep_overrides,
            )
        parsed = OverridesParser.create().parse_overrides(overrides=overrides)
        ConfigLoaderImpl.validate_sweep_overrides_legal(parsed, run_mode=run_mode, from_shell=True)
        if appended:  # `hydra.mode=...`, the last override: Hydra applies it last
            cfg.hydra.mode = run_mode
            cfg.hydra.overrides.hydra.append(mode_override)
        return cfg

    return load_configuration
