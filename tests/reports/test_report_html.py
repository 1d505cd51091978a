"""The report as a document: figures, self-containment, escaping, partial and empty runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from reports import NoResultsError, ResultsStore, build_report
from tests.reports.demo_store import make_demo_store

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EXPECTED_FIGURES = {
    "heatmap_miou",
    "heatmap_gain",
    "severity_curves",
    "class_iou",
    "timeline_0",
    "timeline_1",
    "samples",
}


def small_run(tmp_path: Path, **kw) -> Path:
    """A quick run: two corruptions, two severities, one seed."""
    opts = dict(
        corruptions=("gaussian_noise", "fog"),
        severities=(1, 3),
        seeds=(0,),
        frames=8,
        schedules=False,
        world_shifts=False,
        samples=False,
        failed=0,
    )
    opts.update(kw)
    make_demo_store(tmp_path, **opts)
    return tmp_path


def test_figures_are_written_and_embedded(demo):
    figs = sorted(p.stem for p in Path(demo["paths"]["figures"]).glob("*.png"))
    assert set(figs) == EXPECTED_FIGURES
    for name in figs:
        data = (Path(demo["paths"]["figures"]) / f"{name}.png").read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert f"](figures/{name}.png)" in demo["md"]
    uris = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', demo["html"])
    assert len(uris) == len(EXPECTED_FIGURES)
    assert all(u.startswith("iVBORw0KGgo") for u in uris)  # base64 of the PNG signature


def test_html_references_nothing_external(demo):
    html = demo["html"]
    for bad in (
        'src="http',
        "src='http",
        'href="http',
        "href='http",
        "url(",
        "@import",
        "<script",
        "<link",
        "<iframe",
    ):
        assert bad not in html.lower(), bad
    srcs = re.findall(r'\bsrc="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    hrefs = re.findall(r'\bhref="([^"]*)"', html)
    assert hrefs and all(h.startswith("#") for h in hrefs)  # in-page anchors only
    assert "<style>" in html


def test_header_names_the_run(demo):
    html = demo["html"]
    for text in (
        "imagenet-c-demo",
        "segnet_small_bn",
        "412,883",
        "torch 2.13.0",
        "359 done, 1 failed, 0 missing of 360 expected",
        "9.2 min",
    ):
        assert text in html and text in demo["md"]
    assert "Partial run" not in html
    # the failed cell is listed with the line that names the exception, full text in HTML
    assert "tent__shot_noise__s5__seed1" in demo["md"]
    assert "RuntimeError: CUDA out of memory while adapting &lt;batch 3&gt;" in demo["md"]
    assert "Traceback (most recent call last)" in html


def test_scenario_and_plugin_text_is_escaped(tmp_path):
    evil = "<script>alert(1)</script>"
    run = small_run(
        tmp_path,
        name=evil,
        description="a <b>bold</b> | claim & more",
        methods=("source", "<img src=x onerror=alert(2)>", "_$x$_"),
        corruptions=("gaussian_noise", "a$\\frac{$b"),
        failed=1,
    )
    paths = build_report(run, quiet=True)
    html = paths["html"].read_text(encoding="utf-8")
    md = paths["markdown"].read_text(encoding="utf-8")
    assert evil not in html and "<img src=x" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "<script" not in html.lower()
    assert evil not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "a &lt;b&gt;bold&lt;/b&gt; \\| claim &amp; more" in md  # no stray table column


def test_partial_run_is_marked_with_missing_cells(tmp_path):
    run = small_run(tmp_path, missing=3)
    store = ResultsStore(run)
    expected = store.expected_cells()
    store.close()
    missing_ids = [c["cell_id"] for c in expected[-3:]]
    paths = build_report(run, quiet=True)
    html = paths["html"].read_text(encoding="utf-8")
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "Partial run." in html and "**Partial run.**" in md
    assert "has not recorded its end" in html
    for cid in missing_ids:
        assert cid in html and cid in md
    assert "Missing cells (3)" in html
    # cells stored so far are still summarised
    assert "Headline: robustness per method" in md


def test_unfinished_run_without_missing_cells_is_partial(tmp_path):
    run = small_run(tmp_path)
    with ResultsStore(run, readonly=False) as store:
        store.set_meta("finished_at", None)
    html = build_report(run, quiet=True)["html"].read_text(encoding="utf-8")
    assert "Partial run." in html and "Missing cells" not in html


def test_empty_and_failed_only_runs_render(tmp_path):
    empty = tmp_path / "empty"
    with ResultsStore.create(empty) as store:
        store.set_meta("scenario", {"name": "nothing-yet"})
    paths = build_report(empty, quiet=True)
    html = paths["html"].read_text(encoding="utf-8")
    assert "nothing-yet" in html and "No completed cells" in html
    assert not list(paths["figures"].glob("*.png"))

    failed = tmp_path / "failed"
    with ResultsStore.create(failed) as store:
        store.set_meta("scenario", {"name": "all-broken"})
        store.set_meta("finished_at", "2026-01-01T00:00:00")
        for sev in (1, 2):
            store.write_cell(
                dict(
                    method="tent",
                    corruption="fog",
                    severity=sev,
                    seed=0,
                    status="failed",
                    error=f"ValueError: bad batch {sev}",
                )
            )
    paths = build_report(failed, quiet=True)
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "2 cell(s) failed" in md and "ValueError: bad batch 2" in md
    assert "Headline" not in md and not list(paths["figures"].glob("*.png"))
    # the database file itself may be given: the report goes beside it
    assert build_report(failed / "results.sqlite", quiet=True)["html"] == failed / "report.html"


def test_a_run_without_finished_cells_shows_no_predictions(tmp_path):
    """A sample whose cell never finished (killed between the two writes, or failed) is left out."""
    with ResultsStore.create(tmp_path) as store:
        store.set_meta("scenario", {"name": "killed"})
        store.write_cell(dict(method="bn", corruption="fog", severity=3, seed=0,
                              status="failed", error="RuntimeError: boom"))  # fmt: skip
        arrays = {k: np.zeros((8, 16, 3), np.uint8) for k in ("clean", "corrupted")}
        arrays.update(semantic=np.zeros((8, 16), np.uint8), prediction=np.zeros((8, 16), np.uint8))
        store.write_sample("bn__fog__s3__seed0", arrays)  # failed cell
        store.write_sample("source__fog__s3__seed0", arrays)  # never stored
    paths = build_report(tmp_path, quiet=True)
    assert not (paths["figures"] / "samples.png").exists()
    assert "prediction" not in paths["markdown"].read_text(encoding="utf-8")


def test_rebuilding_replaces_stale_figures(tmp_path):
    run = small_run(tmp_path)
    stale = tmp_path / "figures"
    stale.mkdir()
    (stale / "timeline_9.png").write_bytes(PNG_MAGIC)
    paths = build_report(run, quiet=True)
    names = {p.stem for p in paths["figures"].glob("*.png")}
    assert "timeline_9" not in names
    assert names == {"heatmap_miou", "heatmap_gain", "severity_curves", "class_iou"}


def test_bad_input_is_rejected(tmp_path):
    with pytest.raises(NoResultsError, match="run_dir"):
        build_report(tmp_path, quiet=True)
    with pytest.raises(TypeError, match="run_dir"):
        build_report(42, quiet=True)  # type: ignore[arg-type]


def test_building_a_report_never_imports_torch(tmp_path):
    run = small_run(tmp_path)
    code = textwrap.dedent(f"""
        import sys
        import reports
        reports.build_report({str(run)!r}, quiet=True)
        assert "torch" not in sys.modules, "torch was imported"
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_a_headless_browser(demo, tmp_path):
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1200,1600",
            demo["paths"]["html"].as_uri(),
        ],
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert shot.is_file(), "chromium wrote no screenshot"
    from matplotlib.image import imread

    img = np.asarray(imread(shot))[..., :3]
    assert img.shape[0] > 100 and img.shape[1] > 100
    non_white = (img < 0.94).any(axis=-1).mean()
    assert non_white > 0.05, f"page looks blank ({non_white:.1%} non-white pixels)"
    assert img.std() > 0.05
