"""Peak memory of one training run in a fresh process: `python -m bench.memprobe KIND SIZE STEPS`.

KIND is `framework` (`train(cfg)` on the large-image experiment) or `bare` (the hand-written loop).
Prints one JSON line: the RSS high-water mark after the imports each needs, and at the end.

The high-water mark is /proc/self/status's VmHWM, this process's own. `getrusage`'s `ru_maxrss`
would do on a fresh shell, but Linux carries it across fork and exec: a child of the (large)
benchmark process would report at least its parent's RSS.
"""

from __future__ import annotations

import json
import resource
import sys


def max_rss_mb() -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no /proc: KiB on Linux


def main(argv: list[str]) -> None:
    kind, size, steps = argv[0], int(argv[1]), int(argv[2])
    from bench import workloads

    if kind == "framework":
        import kernellab.training  # noqa: F401  (what a run imports, before any data exists)

        imported = max_rss_mb()
        workloads.run_framework(*workloads.large_overrides(size, steps))
    elif kind == "bare":
        imported = max_rss_mb()
        loop = workloads.large_loop(size)
        for _ in range(steps):
            loop.step()
    else:
        raise SystemExit(f"unknown kind {kind!r}: framework or bare")
    print(json.dumps({"import_rss_mb": imported, "peak_rss_mb": max_rss_mb()}))


if __name__ == "__main__":
    main(sys.argv[1:])
