"""kernellab.backends: `auto`, and what an entry refuses (the registry's own rules)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kernellab import backends
from kernellab.backends import AUTO, BACKENDS, DEFAULT, MAX_LOOP_OUTPUTS


def test_a_named_backend_is_itself_and_auto_is_torch_for_small_or_gpu_problems():
    for name in BACKENDS:
        assert backends.resolve(name, "cuda", 10**9) == name
    assert backends.resolve(AUTO, "cpu", 6 * 7) == DEFAULT == "torch"
    assert backends.resolve(AUTO, "cuda", 4096 * 4096) == "torch"


def test_auto_is_fused_on_the_cpu_from_256_squared_outputs(monkeypatch):
    pytest.importorskip("numba")
    assert backends.resolve(AUTO, "cpu", 256 * 256) == "fused"
    assert backends.resolve(AUTO, "cpu", 256 * 256 - 1) == "torch"


def test_only_torch_batches_and_only_fused_is_tied_to_a_device():
    assert [n for n, b in BACKENDS.items() if b.batches] == ["torch"]
    assert backends.device_refusal("fused", SimpleNamespace(type="cpu")) is None
    refusal = backends.device_refusal("fused", SimpleNamespace(type="cuda"))
    assert refusal.startswith("runs on the CPU only; use torch or auto")
    assert backends.device_refusal("torch", SimpleNamespace(type="cuda")) is None


def test_the_loop_refuses_more_outputs_than_its_limit_and_names_the_others():
    assert backends.size_refusal("loop", MAX_LOOP_OUTPUTS) is None
    refusal = backends.size_refusal("loop", MAX_LOOP_OUTPUTS + 1)
    assert f"at most {MAX_LOOP_OUTPUTS} outputs" in refusal
    assert refusal.endswith("use auto, torch, fused or corr2d")
    assert backends.size_refusal("torch", 10**9) is None
    assert backends.size_refusal("no-such", 1) is None  # validation names the unknown choice


def test_memory_estimates_follow_the_tensors_each_backend_allocates():
    # a 100x100 image, 99x99 output, 2x2 kernel, float32
    conv = BACKENDS["torch"].job_bytes((100, 100), (99, 99), (2, 2))
    assert conv == 4 * (2 * 100 * 100 + 99 * 99 * (6 + 8 * 4))
    # fused: X, its padded copy, Y and the prediction picture: nothing else image-sized
    assert BACKENDS["fused"].job_bytes((100, 100), (99, 99), (2, 2)) == 4 * 2 * (10_000 + 9801)


def test_the_help_text_lists_every_backend():
    text = backends.help_text()
    assert text.startswith("`auto`, `torch`, `fused`, `corr2d`, `loop`: F.conv2d;")


def test_auto_picks_torch_for_channels_and_only_fused_refuses_them():
    pytest.importorskip("numba")
    assert backends.resolve(AUTO, "cpu", 512 * 512) == "fused"
    assert backends.resolve(AUTO, "cpu", 512 * 512, channels=True) == DEFAULT
    for name in BACKENDS:
        assert backends.channels_refusal(name, (1, 1)) is None
    refused = [n for n in BACKENDS if backends.channels_refusal(n, (1, 3))]
    assert refused == ["fused"]
    assert "(out 1, in 3)" in backends.channels_refusal("fused", (1, 3))
