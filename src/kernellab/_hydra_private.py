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

__all__ = ["WRITTEN_FOR", "BasicSweeper", "help_fills_only_its_placeholders"]


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
