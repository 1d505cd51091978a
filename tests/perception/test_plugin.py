"""Third-party adaptation methods: an installed plugin package, a broken one, module:Class paths.

``PLUGIN_MODULE``, ``PLUGIN_PYPROJECT`` and ``PLUGIN_USAGE`` are read from README.md's plug-in
example: these tests install it with pip exactly as a user would, run its usage snippet and
check that the method works.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

import perception
from tests.perception.test_adapt_nets import TinyNet, batches

torch.set_num_threads(1)

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _readme_block(after: str, lang: str) -> str:
    """The first ``lang`` code block of README.md after the line that starts with ``after``."""
    match = re.search(rf"^{re.escape(after)}.*?```{lang}\n(.*?)```", README, re.S | re.M)
    assert match, f"README.md has no {lang} block after {after!r}"
    return match.group(1)


PLUGIN_MODULE = _readme_block("`roadshift_confident.py`:", "python")
PLUGIN_PYPROJECT = _readme_block("`pyproject.toml` — the entry point", "toml")
PLUGIN_USAGE = _readme_block("Install it and it is a method like the built-in ones", "python")


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """The README example, pip-installed (no network, no dependencies) into a target dir."""
    root = tmp_path_factory.mktemp("plugin")
    src, target = root / "roadshift-confident", root / "site"
    src.mkdir()
    (src / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (src / "roadshift_confident.py").write_text(PLUGIN_MODULE)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--no-cache-dir",
        "--target",
        str(target),
        str(src),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return target


@pytest.fixture
def on_path(installed_plugin, monkeypatch):
    monkeypatch.syspath_prepend(str(installed_plugin))
    yield installed_plugin
    sys.modules.pop("roadshift_confident", None)


def test_readme_example_is_as_long_as_the_readme_says():
    stated = re.search(r"Here is a complete method \((\d+) lines\)", README)
    assert stated and int(stated.group(1)) == len(PLUGIN_MODULE.strip().splitlines()) <= 40


def test_readme_usage_snippet_runs(on_path):
    namespace: dict = {}
    exec(compile(PLUGIN_USAGE, "README.md", "exec"), namespace)
    assert namespace["logits"].shape == (4, 19, 128, 256)
    assert namespace["adapter"].stats["backward_passes"] == 1  # it adapted on the batch


def test_installed_plugin_is_discovered_and_works(on_path):
    assert "confident-tent" in perception.adapter_names()
    info = perception.adapter_info("confident-tent")
    assert info.origin == "plugin (roadshift-confident 0.1.0)" and info.error is None
    assert info.description.startswith("TENT on BatchNorm affine parameters")
    assert info.options["margin"] == 0.4 and info.options["lr"] == 1e-3

    model, xs = TinyNet(), batches(3)
    # margin large enough to keep every pixel: exactly TENT
    plugin = perception.create_adapter("confident-tent", model, margin=10.0)
    tent = perception.create_adapter("tent", model)
    for x in xs:
        torch.testing.assert_close(plugin.predict(x), tent.predict(x), atol=1e-6, rtol=0)
    # margin 0 keeps no pixel: nothing trains, every batch is plain BN re-estimation
    frozen = perception.create_adapter("confident-tent", model, margin=0.0)
    bn = perception.create_adapter("bn", model)
    for x in xs:
        torch.testing.assert_close(frozen.predict(x), bn.predict(x), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"unknown option.*'marginn'.*margin"):
        perception.create_adapter("confident-tent", model, marginn=1)


def test_plugin_is_listed_by_the_command_line(on_path):
    """``roadshift list methods`` in a fresh process sees the installed plugin."""
    code = "import sys; from scenarios.cli import main; sys.exit(main(['list', 'methods']))"
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(on_path)},
    )
    assert run.returncode == 0, run.stderr
    lines = {line.split()[0]: line for line in run.stdout.splitlines() if line.strip()}
    assert "plugin (roadshift-confident 0.1.0)" in lines["confident-tent"]
    assert {"source", "bn", "tent"} <= set(lines)


def write_dist(root, name: str, entry_points: str, module: str, source: str) -> None:
    """A minimal installed distribution: a module and its .dist-info (what pip leaves)."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[roadshift.adapters]\n{entry_points}\n")


def test_broken_plugin_is_reported_not_fatal(tmp_path, monkeypatch):
    write_dist(
        tmp_path,
        "broken-method",
        "broken-method = broken_method_mod:Nope",
        "broken_method_mod",
        "import a_module_that_does_not_exist\n",
    )
    write_dist(
        tmp_path,
        "wrong-kind",
        "wrong-kind = wrong_kind_mod:NotAnAdapter",
        "wrong_kind_mod",
        "class NotAnAdapter:\n    pass\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    names = perception.adapter_names()
    assert {"broken-method", "wrong-kind", "source", "tent"} <= set(names)
    with pytest.warns(RuntimeWarning, match=r"a_module_that_does_not_exist"):
        info = perception.adapter_info("broken-method")
    assert "ModuleNotFoundError" in info.error and info.description.startswith("broken plugin")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert "not a perception.Adapter" in perception.adapter_info("wrong-kind").error
    with pytest.raises(ValueError, match=r"'broken-method'.*failed to load.*ModuleNotFoundError"):
        perception.create_adapter("broken-method", TinyNet())
    # everything else still works
    assert perception.create_adapter("tent", TinyNet()).predict(batches(1)[0]).shape[1] == 5


def test_module_class_path_works_without_installing(tmp_path, monkeypatch):
    (tmp_path / "my_tta_methods.py").write_text(PLUGIN_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        adapter = perception.create_adapter("my_tta_methods:ConfidentTent", TinyNet(), margin=10)
        assert type(adapter).__name__ == "ConfidentTent"
        adapter.predict(batches(1)[0])
        assert adapter.stats["backward_passes"] == 1
        info = perception.adapter_info("my_tta_methods:ConfidentTent")
        assert info.origin == "path" and info.options["margin"] == 0.4
        with pytest.raises(ValueError, match=r"cannot import module 'no_such_module'"):
            perception.create_adapter("no_such_module:X", TinyNet())
        with pytest.raises(ValueError, match=r"has no attribute 'Missing'"):
            perception.create_adapter("my_tta_methods:Missing", TinyNet())
        with pytest.raises(TypeError, match=r"not a perception.Adapter"):
            perception.create_adapter("my_tta_methods:nn", TinyNet())
    finally:
        sys.modules.pop("my_tta_methods", None)
