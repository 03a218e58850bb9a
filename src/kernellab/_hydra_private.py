"""Every use of Hydra's private names in kernellab, in one place. (The batched launcher plugin,
which imports nothing from kernellab, keeps its own: see docs/architecture.md.)

Written for hydra-core 1.3 (`tests/test_private_apis.py` states the version and fails with a
clear message on another one).
"""

from __future__ import annotations

# Why: a sweep's report expands the command line's sweep overrides into its jobs, exactly as
# Hydra's basic sweeper does (ranges, choices, globs). Hydra's public API has no function for it;
# `BasicSweeper.split_arguments` is a static method of the internal basic sweeper.
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

WRITTEN_FOR = ("1.3",)  # hydra-core versions (major.minor)

__all__ = ["WRITTEN_FOR", "BasicSweeper"]
