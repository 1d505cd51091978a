"""The README's mean-teacher plug-in, run exactly as printed there."""

from __future__ import annotations

import re
from pathlib import Path

import torch

import perception

torch.set_num_threads(1)
README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def readme_class() -> type:
    block = re.search(
        r"A mean teacher on flipped views, in full \(`mean_teacher.py`\):\n\n```python\n(.*?)```",
        README,
        re.S,
    )
    assert block, "the README lost its mean-teacher example"
    namespace: dict = {}
    exec(compile(block.group(1), "mean_teacher.py", "exec"), namespace)
    return namespace["MeanTeacher"]


def test_readme_mean_teacher_runs_resets_and_is_seeded():
    cls = readme_class()
    model = perception.create_model("test_bn").eval()
    g = torch.Generator().manual_seed(0)
    xs = [torch.rand((2, 3, 32, 64), generator=g) for _ in range(3)]
    adapter = perception.create_adapter(cls, model, teacher_momentum=0.5)
    teacher0 = {k: v.clone() for k, v in adapter.teacher.state_dict().items()}
    outs = [adapter.predict(x) for x in xs]
    with torch.no_grad():
        assert torch.equal(outs[0], perception.create_adapter("source", model).predict(xs[0]))
    assert any(not torch.equal(v, teacher0[k]) for k, v in adapter.teacher.state_dict().items())
    s = adapter.stats
    assert (s["image_forwards"], s["image_backwards"], s["steps"]) == (12, 6, 3)
    adapter.reset()  # the teacher comes back too
    assert all(torch.equal(v, teacher0[k]) for k, v in adapter.teacher.state_dict().items())
    again = perception.create_adapter(cls, model, teacher_momentum=0.5)
    assert torch.equal(torch.stack([again.predict(x) for x in xs]), torch.stack(outs))
