"""tools/pick_python.py: which Python `make setup` builds the venv with (no network used here)."""
import importlib.util
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "tools", "pick_python.py")
spec = importlib.util.spec_from_file_location("pick_python", SCRIPT)
pick = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pick)


def test_the_newest_jax_wins_then_the_newest_python():
    rows = [((0, 10, 2), (3, 11, 7), "/py311"), ((0, 12, 1), (3, 12, 1), "/py312"),
            ((0, 12, 1), (3, 13, 0), "/py313"), ((0, 11, 0), (3, 14, 0), "/py314")]
    assert pick.choose(rows)[2] == "/py313"
    # a newer Python that only gets an older JAX loses to an older Python with the newest JAX
    assert pick.choose([((0, 12, 1), (3, 12, 1), "/a"), ((0, 10, 2), (3, 13, 0), "/b")])[2] == "/a"
    # JAX versions compare as numbers, not strings (0.10 is newer than 0.9)
    assert pick.choose([((0, 9, 2), (3, 13, 0), "/a"), ((0, 10, 0), (3, 11, 0), "/b")])[2] == "/b"


def test_interpreters_that_do_not_run_are_skipped(tmp_path):
    assert pick.probe(str(tmp_path / "no-such-python")) is None
    shim = tmp_path / "python3.99"  # like a pyenv shim for a version that is not selected: exits 127
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.99: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    assert pick.probe(str(shim)) is None


def test_this_interpreter_is_found_with_its_version():
    version, path = pick.probe(sys.executable)
    assert version[:2] == sys.version_info[:2]
    assert os.path.isfile(path)


def test_oldest_prints_a_supported_python_that_runs():
    out = subprocess.run([sys.executable, SCRIPT, "--oldest"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    exe = out.stdout.strip()
    ran = subprocess.run([exe, "-c", "import sys, venv; print(sys.version_info[0], sys.version_info[1])"],
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0
    major, minor = map(int, ran.stdout.split())
    assert (major, minor) >= pick.OLDEST
    assert (major, minor) <= sys.version_info[:2]  # no newer than the Python running the suite
