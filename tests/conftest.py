"""Shared fixtures: where the real data lives (``SIAMJAX_DATA`` or ``../shared/data``)."""
import os
import pathlib

import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA_ROOT = pathlib.Path(os.environ.get("SIAMJAX_DATA", REPO.parent / "shared" / "data"))
TESTDATA_ROOT = pathlib.Path(os.environ.get("SIAMJAX_TESTDATA", REPO.parent / "shared" / "testdata"))
sys.path.insert(0, str(REPO))  # configs/ is importable from the tests


# Test programs are small and run a few steps: on CPU compiling them takes longer than running them.
# Without LLVM's optimisations XLA compiles several times faster; the mathematics is the same.
FAST_COMPILE = "--xla_backend_optimization_level=0"


def subprocess_env(devices: int | None = None, **extra) -> dict:
    """The environment for a JAX subprocess: this session's XLA flags and compilation cache, plus
    ``devices`` simulated CPU devices."""
    flags = os.environ.get("XLA_FLAGS", "")
    if devices is not None:
        flags = f"{flags} --xla_force_host_platform_device_count={devices}"
    return {**os.environ, "XLA_FLAGS": flags.strip(), "JAX_PLATFORMS": "cpu", **extra}


def pytest_configure(config):
    """One persistent XLA compilation cache for the whole session (this process and the training
    subprocesses the tests start): identical programs compile once. Compiled without LLVM's
    optimisations (:data:`FAST_COMPILE`) unless XLA_FLAGS already chooses a level."""
    import tempfile

    if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()

    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="siamjax-xla-cache-")
        config._siamjax_cache_made = os.environ["JAX_COMPILATION_CACHE_DIR"]  # ours to remove at the end
    cache = os.environ["JAX_COMPILATION_CACHE_DIR"]
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    import jax

    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


def pytest_unconfigure(config):
    """Remove the compilation cache this session made (an inherited one belongs to whoever set it)."""
    made = getattr(config, "_siamjax_cache_made", None)
    if made:
        import shutil

        shutil.rmtree(made, ignore_errors=True)


@pytest.fixture(scope="session")
def data_root() -> pathlib.Path:
    """The folder that holds omniglot/, att_faces/, ... (fails loudly when absent)."""
    if not (DATA_ROOT / "omniglot").is_dir():
        pytest.fail(f"real data not found at {DATA_ROOT}; set SIAMJAX_DATA to the folder holding omniglot/")
    return DATA_ROOT


@pytest.fixture(scope="session")
def omniglot_dir(data_root) -> pathlib.Path:
    return data_root / "omniglot"


@pytest.fixture(scope="session")
def testdata_root() -> pathlib.Path:
    if not (TESTDATA_ROOT / "pml_reference.json").is_file():
        pytest.fail(f"oracle values not found at {TESTDATA_ROOT}; set SIAMJAX_TESTDATA")
    return TESTDATA_ROOT
