"""Third-party adaptation methods: an installed plugin package, a broken one, module:Class paths.

``PLUGIN_MODULE`` and ``PLUGIN_PYPROJECT`` are the README's plug-in example, verbatim: these
tests install it with pip exactly as a user would and check that it works.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

import perception
from tests.perception.test_adapt_nets import TinyNet, batches

torch.set_num_threads(1)

PLUGIN_MODULE = '''\
"""roadshift-confident: TENT restricted to confident pixels (an EATA-style entropy filter)."""

import math

from torch import nn

import perception


class ConfidentTent(perception.Adapter):
    """TENT on BatchNorm affine parameters, minimising entropy on confident pixels only."""

    options = {"margin": 0.4}  # keep pixels whose entropy < margin * ln(number of classes)

    def configure(self, model: nn.Module) -> None:
        super().configure(model)  # eval mode, every parameter frozen
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):  # normalise with the test batch's statistics
                m.train()
                m.track_running_stats = False
                m.running_mean = m.running_var = None
                m.requires_grad_(True)

    def params_to_train(self, model: nn.Module) -> list:
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        return [p for m in bns for p in m.parameters()]

    def loss(self, logits, x):
        entropy = -(logits.softmax(1) * logits.log_softmax(1)).sum(1)  # per pixel
        keep = (entropy < self.margin * math.log(logits.shape[1])).float()
        return (entropy * keep).sum() / keep.sum().clamp(min=1.0)
'''

PLUGIN_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "roadshift-confident"
version = "0.1.0"
dependencies = ["roadshift"]

[project.entry-points."roadshift.adapters"]
confident-tent = "roadshift_confident:ConfidentTent"

[tool.setuptools]
py-modules = ["roadshift_confident"]
"""


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


def test_readme_example_is_at_most_40_lines():
    assert len(PLUGIN_MODULE.strip().splitlines()) <= 40


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
