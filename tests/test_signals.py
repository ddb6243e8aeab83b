"""Signals and full disks: nothing lost, nothing left behind (issue 14).

A terminal's Ctrl-C reaches the whole process group; SIGTERM and SIGKILL reach the main process. Either way
dsqn-deploy --backend sim leaves no Lava process, no shared-memory segment and no temp folder behind.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from support import export, make_net

BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def group_left(pgid: int) -> list[str]:
    """Live processes of a process group (zombies are not counted)."""
    out = subprocess.run(["ps", "-eo", "pid=,pgid=,stat=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.split()[1] == str(pgid) and not line.split()[2].startswith("Z")]


def wait_group_gone(pgid: int, seconds: float = 10.0) -> list[str]:
    deadline = time.time() + seconds
    while time.time() < deadline:
        left = group_left(pgid)
        if not left:
            return []
        time.sleep(0.25)
    return group_left(pgid)


def shm() -> set[str]:
    return {n for n in os.listdir("/dev/shm") if n.startswith("psm_")} if os.path.isdir("/dev/shm") else set()


@pytest.fixture(scope="module")
def small_net(tmp_path_factory) -> Path:
    return export(make_net(input_shape=(8,), n_actions=2), tmp_path_factory.mktemp("net") / "m.net")


def start_deploy(net: Path, tmp_path: Path) -> subprocess.Popen:
    """dsqn-deploy --backend sim in its own session (its pid is its pgid), output to files (a pipe would be held
    open by any process left behind); returns once Lava's processes run."""
    out, err = open(tmp_path / "out.txt", "w"), open(tmp_path / "err.txt", "w")  # noqa: SIM115
    proc = subprocess.Popen([str(BIN / "dsqn-deploy"), str(net), "--backend", "sim", "--episodes", "500",
                             "--report", str(tmp_path / "r.json")], cwd=tmp_path, stdout=out, stderr=err,
                            start_new_session=True, env=ENV,
                            # a job started with '&' by a non-interactive shell ignores SIGINT: give it back
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    out.close()
    err.close()
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if "Ctrl-C stops cleanly" in (tmp_path / "out.txt").read_text() and len(group_left(proc.pid)) >= 5:
            break
        time.sleep(0.5)
    time.sleep(2)  # well inside the closed loop
    assert proc.poll() is None, (tmp_path / "err.txt").read_text()[-2000:]
    return proc


def finish(proc: subprocess.Popen, tmp_path: Path) -> tuple[int, str]:
    try:
        rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail("dsqn-deploy did not exit within 30 s of the signal")
    return rc, (tmp_path / "err.txt").read_text()


@pytest.mark.lava
def test_ctrl_c_of_the_process_group(small_net: Path, tmp_path: Path):
    before = shm()
    proc = start_deploy(small_net, tmp_path)
    for _ in range(3):  # as a terminal does, and an impatient user
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.3)
    rc, err = finish(proc, tmp_path)
    assert rc == 130, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    assert wait_group_gone(proc.pid) == []
    assert shm() - before == set()
    assert not (tmp_path / "r.json").exists()


@pytest.mark.lava
def test_sigterm_of_the_main_process(small_net: Path, tmp_path: Path):
    before = shm()
    proc = start_deploy(small_net, tmp_path)
    os.kill(proc.pid, signal.SIGTERM)
    rc, err = finish(proc, tmp_path)
    assert rc == 143, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    assert wait_group_gone(proc.pid) == []
    assert shm() - before == set()


@pytest.mark.lava
def test_sigkill_of_the_main_process_leaves_no_lava_process(small_net: Path, tmp_path: Path):
    before = shm()
    proc = start_deploy(small_net, tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # Lava's workers die with their parent (PR_SET_PDEATHSIG); multiprocessing's resource tracker, the last one
    # holding the segments' registrations, unlinks them when they are gone.
    assert wait_group_gone(proc.pid) == []
    assert shm() - before == set()
    # A SIGKILLed process cannot remove its multiprocessing temp folder; the next run that starts Lava does.
    left = list(Path(tempfile.gettempdir()).glob(f"dsqn-lava-{proc.pid}-*"))
    assert left
    subprocess.run([sys.executable, "-c", "from dsqn.deploy.lava_backend import _own_temp_dir; _own_temp_dir()"],
                   check=True, env=ENV)
    assert not any(p.exists() for p in left)


# -- full disks -----------------------------------------------------------------------------------------------


def _enospc(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_atomic_write_on_a_full_disk_leaves_nothing(tmp_path: Path, monkeypatch):
    from dsqn.errors import UserError
    from dsqn.files import fileio

    monkeypatch.setattr(fileio.os, "fsync", _enospc)
    with pytest.raises(UserError, match="r.json: cannot write .No space left on device."):
        fileio.atomic_write_text(tmp_path / "r.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_export_on_a_full_disk_leaves_nothing(tmp_path: Path, monkeypatch):
    """The HDF5 file is built in memory; only the final write touches the disk, so a full disk is one error."""
    from dsqn.errors import UserError
    from dsqn.files import fileio

    (tmp_path / "m.net").write_bytes(b"an earlier export")
    monkeypatch.setattr(fileio.os, "fsync", _enospc)
    with pytest.raises(UserError, match="m.net: cannot write"):
        export(make_net(), tmp_path / "m.net")
    assert [p.name for p in tmp_path.iterdir()] == ["m.net"]
    assert (tmp_path / "m.net").read_bytes() == b"an earlier export"


def test_deploy_report_and_html_on_a_full_disk(tmp_path: Path, small_net: Path, monkeypatch, capsys):
    from dsqn.deploy.cli import main
    from dsqn.files import fileio

    monkeypatch.setattr(fileio.os, "fsync", _enospc)
    for extra in (["--report", str(tmp_path / "r.json")], ["--report", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html")]):
        with pytest.raises(SystemExit) as exc:
            main([str(small_net), "--backend", "emu", "--episodes", "1", "--max-steps", "3", *extra])
        assert exc.value.code == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and "cannot write (No space left on device)" in err[0], err
        assert list(tmp_path.iterdir()) == []


def test_a_full_disk_anywhere_in_a_console_script_is_one_line():
    """Not only the atomic writers: a log row or a TensorBoard event failing with ENOSPC ends in one line, exit 2."""
    import errno as _errno
    import io as _io
    from contextlib import redirect_stderr

    from dsqn.errors import cli_entry

    @cli_entry("dsqn-train")
    def main() -> int:
        raise OSError(_errno.ENOSPC, "No space left on device", "run/metrics.csv")

    err = _io.StringIO()
    with redirect_stderr(err), pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    assert err.getvalue() == "dsqn-train: error: cannot write (run/metrics.csv): No space left on device\n"

    @cli_entry("dsqn-train")
    def other() -> int:
        raise OSError(_errno.EIO, "Input/output error")

    with pytest.raises(OSError):
        other()
