"""Hydra's own launcher test suites (`LauncherTestSuite`, `IntegrationTestSuite`) for
`hydra/launcher=slurm_batched`, against the local cluster (`scripts/slurm-cluster.sh up`).

Hydra's test apps are not kernellab: they find the launcher's config through kernellab's
`conf/` on the search path (`hydra.searchpath`), their jobs weigh 1 each (kernellab.packing), and
each sweep is one SLURM array run by the same code as kernellab's. One CPU and 1 GB a task. Slow
(each test waits for SLURM to start Python): 5-8 s a test.
"""

from __future__ import annotations

import pytest
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite

from tests.test_batched_launcher import (  # noqa: F401  (autouse fixtures, used by name)
    ROOT,
    fresh_version_base,
    plugin_importable_in_subprocesses,
)
from tests.test_slurm import (  # noqa: F401  (the cluster tests' marks: slow, slurm)
    pytestmark,
)

ON_THE_CLUSTER = [
    f"hydra.searchpath=[file://{ROOT / 'conf'}]",  # where slurm_batched.yaml is
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.tasks=2",
]


@pytest.mark.parametrize("launcher_name, overrides", [("slurm_batched", ON_THE_CLUSTER)])
class TestSlurmBatchedLauncher(LauncherTestSuite):
    pass


@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [({}, ["-m", "hydra/launcher=slurm_batched", *ON_THE_CLUSTER])],
)
class TestSlurmBatchedLauncherIntegration(IntegrationTestSuite):
    pass
