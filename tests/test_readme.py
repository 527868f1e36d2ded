"""The README's Python examples run as written (marked ``<!-- test: NAME -->``), with the data path
this session uses and, for the training loop, fewer steps; and the README stays a short user page."""
import pathlib
import re

import pytest

from tests.conftest import DATA_ROOT

REPO = pathlib.Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def example(name: str) -> str:
    m = re.search(rf"<!-- test: {name} -->\s*```python\n(.*?)```", README, re.S)
    assert m, f"README has no example marked <!-- test: {name} -->"
    return m.group(1).replace("../shared/data", str(DATA_ROOT))


def test_readme_is_short_and_has_the_two_quick_start_commands():
    assert len(README.splitlines()) <= 300
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.search(r"```bash\n(.*?)```", quick, re.S).group(1).strip().splitlines()
    assert [c.split("#")[0].strip() for c in commands] == ["make demo", "make test"]


def test_inference_example_runs(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    exec(compile(example("inference"), "README.md:inference", "exec"), {})
    assert "same" in capsys.readouterr().out


def test_training_loop_example_runs(monkeypatch, capsys):
    code = example("training-loop")
    assert "STEPS, P, K, SIZE = 100," in code
    monkeypatch.chdir(REPO)
    scope = {}
    exec(compile(code.replace("STEPS, P, K, SIZE = 100,", "STEPS, P, K, SIZE = 3,"), "README.md:training-loop",
                 "exec"), scope)
    out = capsys.readouterr().out
    assert "step 0: loss" in out and "step 2: loss" in out
    assert scope["emb"].shape[0] == 8 and scope["emb"].ndim == 2
