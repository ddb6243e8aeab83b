"""Correctness loose ends (issue 27, issue 26): each test here failed on the code before its fix."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from support import export, make_net

from dsqn.files.netfile_read import read_netfile
from dsqn.hw_sim.emulator import Emulator

CONV = [{"type": "conv", "out": 4, "kernel": 3, "stride": 2}, {"type": "dense", "out": 8}]


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Emulator:
    path = tmp_path_factory.mktemp("emu") / "m.net"
    return Emulator(read_netfile(export(make_net(seed=3, input_shape=(6,), weight_gain=4.0), path)))


def _same_run(a, b) -> bool:  # type: ignore[no-untyped-def]
    return all(np.array_equal(x.spikes, y.spikes) and np.array_equal(x.v, y.v) for x, y in zip(a.traces, b.traces))


def test_emulator_run_takes_bool_and_every_integer_dtype_as_the_same_spikes(emu):
    """lava-dl users pass binary spikes as bool arrays; that used to raise '"abs_cpu" not implemented for 'Bool''."""
    spikes = np.random.default_rng(0).random((3, 6, 20)) < 0.4
    reference = emu.run(spikes.astype(np.float32), reset_interval=8, reset_offset=1, record=True)
    assert reference.traces[-2].spikes.any(), "the test network should spike"
    payloads = [spikes, torch.from_numpy(spikes)] + [spikes.astype(dt) for dt in
                                                     (np.uint8, np.int8, np.int16, np.int32, np.int64, np.uint16,
                                                      np.uint32, np.uint64, np.float64)]
    payloads += [torch.from_numpy(spikes.astype(np.int64)), torch.from_numpy(spikes).to(torch.float32).requires_grad_()]
    for payload in payloads:
        res = emu.run(payload, reset_interval=8, reset_offset=1, record=True)
        assert _same_run(res, reference), f"{type(payload).__name__} {payload.dtype}"


def test_emulator_infer_takes_bool_and_integer_payloads(emu):
    payload = np.random.default_rng(1).integers(0, 2, (4, 6))
    v, windows, overflow = emu.infer(payload.astype(np.int64), 8)
    for other in (payload.astype(bool), torch.from_numpy(payload.astype(bool)), payload.astype(np.uint32)):
        v2, windows2, overflow2 = emu.infer(other, 8)
        assert np.array_equal(v, v2) and all(np.array_equal(a, b) for a, b in zip(windows, windows2))
        assert overflow == overflow2


@pytest.mark.parametrize("bad,needle", [(0.5, "first 0.5 at index (0, 1"), (np.nan, "first nan at index (0, 1"),
                                        (-np.inf, "first -inf at index (0, 1")])
def test_emulator_refuses_fractional_payloads_in_one_line(emu, bad, needle):
    payload = np.zeros((2, 6, 5))
    payload[0, 1, 2] = bad
    with pytest.raises(ValueError) as run_err:
        emu.run(payload, reset_interval=8, reset_offset=1)
    with pytest.raises(ValueError) as infer_err:
        emu.infer(torch.from_numpy(payload[..., 2]), 8)  # the same value, at index (0, 1) of a (2, 6) payload
    for err, where in ((run_err, "1 of 60, " + needle + ", 2)"), (infer_err, "1 of 12, " + needle + ")")):
        msg = str(err.value)
        assert "\n" not in msg and f"non-integer values ({where}" in msg, msg


def test_emulator_refuses_payloads_of_another_shape(emu):
    with pytest.raises(ValueError, match=r"payload of shape \(5,\): expected \(6,\) \(one observation\)"):
        emu.infer(np.zeros(5, dtype=np.int64), 8)
    with pytest.raises(ValueError, match=r"run\(\) takes a payload of shape \(batch, inputs, steps\), got shape \(6, 5\)"):
        emu.run(np.zeros((6, 5), dtype=np.int64))


@pytest.mark.parametrize("shape,layers,fused", [((6,), None, True), ((6,), None, False), ((2, 9, 9), CONV, False)])
def test_emulator_infer_of_one_unbatched_payload_returns_unbatched_results(tmp_path, shape, layers, fused):
    """Issue 26: ``infer`` without a batch dimension failed with a shape error. One observation's payload gives the
    batched results' first row: voltage (A,), windows (N_i, T)."""
    emu = Emulator(read_netfile(export(make_net(seed=5, input_shape=shape, layers=layers, weight_gain=4.0),
                                       tmp_path / "m.net")))
    payload = np.random.default_rng(2).integers(0, 64, (3, *shape))
    v, windows, overflow = emu.infer(payload, 8, fused_path=fused)
    assert any(w.any() for w in windows[:-1]), "the test network should spike"
    for row in range(3):
        v1, windows1, overflow1 = emu.infer(payload[row], 8, fused_path=fused)
        assert v1.shape == (3,) and np.array_equal(v1, v[row])
        assert [w.shape for w in windows1] == [w.shape[1:] for w in windows]
        assert all(np.array_equal(a, b[row]) for a, b in zip(windows1, windows))
        assert len(overflow1) == len(overflow)
    flat_batch, _, _ = emu.infer(payload.reshape(3, -1), 8, fused_path=fused)  # a batch of flattened payloads
    assert np.array_equal(flat_batch, v)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)
    return proc.pid


def test_every_deploy_removes_the_socket_folders_of_dead_processes(tmp_path, capsys):
    """Issue 27: a SIGKILLed sim deploy left its dsqn-lava-<pid>-* folder until the next Lava start; now every
    deploy (here on the emulator) removes those of dead processes, says how many on stderr, and keeps the folders of
    live processes, of a process that died in the last minute, and anything not named like one."""
    from dsqn.deploy.closed_loop import STALE_DIR_MIN_AGE_S, make_policy
    from dsqn.deploy.lava_runtime import TEMPDIR_PREFIX

    net = read_netfile(export(make_net(input_shape=(4,)), tmp_path / "m.net"))
    base = Path(tempfile.gettempdir())
    old = time.time() - STALE_DIR_MIN_AGE_S - 5
    dead = [base / f"{TEMPDIR_PREFIX}{_dead_pid()}-{tag}" for tag in ("a1b2", "c3d4")]
    recent = base / f"{TEMPDIR_PREFIX}{_dead_pid()}-e5f6"
    live = base / f"{TEMPDIR_PREFIX}{os.getppid()}-g7h8"
    other = base / f"{TEMPDIR_PREFIX}notapid-i9"
    made = [*dead, recent, live, other]
    try:
        for folder in made:
            folder.mkdir()
            with socket.socket(socket.AF_UNIX) as sock:  # what multiprocessing leaves there: a listener's socket
                sock.bind(str(folder / "listener-x"))
            if folder is not recent:
                os.utime(folder, (old, old))
        capsys.readouterr()
        make_policy(net, "emu").close()
        err = capsys.readouterr().err
        assert err == f"removed 2 stale Lava socket folders of dead processes ({base / TEMPDIR_PREFIX}<pid>-*)\n"
        assert [f.exists() for f in made] == [False, False, True, True, True]
        make_policy(net, "emu").close()
        assert capsys.readouterr().err == ""  # nothing removed: nothing said
        os.utime(recent, (old, old))
        make_policy(net, "emu").close()
        assert capsys.readouterr().err.startswith("removed 1 stale Lava socket folder of dead processes (")
        assert not recent.exists() and live.exists()
    finally:
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)
