"""What `pip install .` ships: every package of the tree, the configs as siamjax.configs, the commands."""
import pathlib
import tomllib

REPO = pathlib.Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_package_of_the_tree_is_listed():
    listed = set(PROJECT["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "siamjax").rglob("__init__.py")}
    assert found | {"siamjax.configs"} == listed
    assert PROJECT["tool"]["setuptools"]["package-dir"] == {"siamjax.configs": "configs"}
    assert (REPO / "configs" / "__init__.py").is_file()


def test_the_commands_point_at_functions_that_exist():
    import ast  # not imported: the command modules define absl flags when imported

    scripts = PROJECT["project"]["scripts"]
    assert set(scripts) == {"siamjax-train", "siamjax-eval", "siamjax-track"}
    for target in scripts.values():
        module, func = target.split(":")
        tree = ast.parse((REPO / (module.replace(".", "/") + ".py")).read_text())
        assert func in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, target


def test_dependencies_have_upper_bounds():
    for dep in PROJECT["project"]["dependencies"]:
        assert "<" in dep or dep.startswith("importlib_resources"), dep
