"""`hydra/sweeper=batched`: Hydra's basic sweeper without the second composition of every job.

The basic sweeper composes each job of a batch once to validate it (`validate_batch_is_legal`),
then the launcher composes it again to run it. With `hydra/launcher=batched` this sweeper lets
the launcher compose the batch once and keep the configs; with any other launcher it validates
with the launcher-independent fast composition (same configs, same errors, checked by tests).
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper


class BatchedSweeper(BasicSweeper):
    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        compose_batch = getattr(self.launcher, "compose_batch", None)
        if callable(compose_batch):
            compose_batch(batch)
            return
        from ._compose import SweepComposer

        assert self.hydra_context is not None and self.config is not None
        composer = getattr(self, "_composer", None)
        if composer is None:
            composer = self._composer = SweepComposer(self.hydra_context.config_loader, self.config)
        for overrides in batch:
            composer.compose(overrides)
