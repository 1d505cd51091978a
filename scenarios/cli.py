"""The roadshift command line: run, report, export, list, preview, train, and datasets out.

Exit status: 0 all good, 1 some cells failed (the rest are stored), 2 bad input. Bad input is
reported as one line on stderr (no traceback) and nothing is created.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

from scenarios._train_augment import AUGMENT_NAMES

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
#: Where runs go without --out: runs/<scenario name>.
RUNS = Path("runs")
#: A public name each of roadshift's packages has: a module without it is someone else's.
_MARKERS = {"sim": "corruption_names", "perception": "create_adapter", "reports": "build_report"}


class BadInput(Exception):
    """Bad input from the command line; its message is the one line printed."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line instead of usage + message
        raise BadInput(f"{self.prog}: {message}")


def _plain(text: str | None) -> str:
    """Docstring text for a terminal: RST markup (``code``, :role:`x`) shown as plain words."""
    text = re.sub(r":[a-z]+:`([^`]*)`", r"\1", text or "")
    return re.sub(r"`{1,2}([^`]*)`{1,2}", r"\1", text)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("roadshift")
    except PackageNotFoundError:  # pragma: no cover - a bare checkout
        return "unknown"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _severity(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 5], got {text!r}") from None
    if not 0 < value <= 5:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 5], got {text!r}")
    return int(value) if value.is_integer() else value


def _parser() -> _Parser:
    from scenarios._dataset_commands import add_dataset_parsers
    from scenarios._train_data import DEFAULT_BATCH_SIZE, DEFAULT_STEPS, SourceData

    p = _Parser(prog="roadshift", description=_plain(__doc__.splitlines()[0]))
    p.add_argument("--version", action="version", version=f"roadshift {_version()}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="run (or resume, or extend) a scenario into a run folder")
    r.add_argument(
        "scenario", help="a bundled scenario name (roadshift list scenarios) or a YAML path"
    )
    r.add_argument(
        "--out", default=None,
        help="run folder; resumed if it holds this run, extended if the scenario only adds "
        "cells (default: runs/NAME, NAME the scenario's name)",
    )  # fmt: skip
    r.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="where units run (default: local)")  # fmt: skip
    r.add_argument("--workers", type=_positive_int, default=None,
                   help="parallel workers (default: the number of CPU cores)")  # fmt: skip
    r.add_argument("--device", default="cpu",
                   help="where the model runs: cpu (bit-reproducible), auto (CUDA when present), "
                   "cuda or cuda:N (default: cpu)")  # fmt: skip
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--no-report", action="store_true", help="do not build the report at the end")
    r.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a scenario key (VALUE is YAML; dotted KEY for nested fields: "
        "online.eta=2, world.town=rural, methods.1.options.lr=0.0005); repeatable, validated "
        "like the file",
    )  # fmt: skip
    r.add_argument(
        "--dry-run", action="store_true",
        help="print the cells, frames and an estimated time (from the bundled model's measured "
        "cost per frame and each method's passes per frame) and exit without writing anything",
    )  # fmt: skip

    rep = sub.add_parser("report", help="(re)build the report of a run folder")
    rep.add_argument("run_dir")
    rep.add_argument("--quiet", action="store_true")

    e = sub.add_parser("export", help="export a run's cells (or segments) to CSV")
    e.add_argument("run_dir")
    e.add_argument("-o", "--output", required=True, help="the CSV file to write")
    e.add_argument("--segments", action="store_true",
                   help="one row per segment instead of one per cell")  # fmt: skip

    ls = sub.add_parser("list", help="list corruptions, methods, models or scenarios")
    ls.add_argument("what", choices=("corruptions", "methods", "models", "scenarios"))

    pv = sub.add_parser("preview", help="contact sheet of one frame under corruptions (PNG)")
    pv.add_argument("-o", "--output", default="preview.png",
                    help="the PNG to write (default: preview.png)")  # fmt: skip
    pv.add_argument("--corruption", nargs="+", action="extend", default=None, metavar="NAME",
                    help="corruptions or groups (default: all)")  # fmt: skip
    pv.add_argument("--severity", type=_severity, nargs="+", action="extend", default=None,
                    metavar="S", help="severities in (0, 5] (default: 1 2 3 4 5)")  # fmt: skip
    pv.add_argument("--height", type=_positive_int, default=128, help="(default: 128)")
    pv.add_argument("--width", type=_positive_int, default=256, help="(default: 256)")
    pv.add_argument("--seed", type=int, default=0, help="(default: 0)")
    pv.add_argument("--frame", type=int, default=8, help="which frame of the drive (default: 8)")
    pv.add_argument("--town", default=None, help="(default: the world's default, urban)")
    pv.add_argument("--time-of-day", default=None, help="(default: day)")
    pv.add_argument("--weather", default=None, help="(default: clear)")

    data = SourceData()
    frames = len(data.towns) * data.streams * len(range(0, data.frames_per_stream, data.stride))
    val = len(data.towns) * data.val_streams * len(range(0, data.frames_per_stream, data.stride))
    t = sub.add_parser(
        "train",
        help="train a model on the simulated world (source domain)",
        description=(
            "Train a model on clear daytime drives in the source towns and write a checkpoint "
            "that records its model and clean validation metrics. The defaults reproduce the "
            f"bundled weights: rendering {frames} training and {val} validation frames (about "
            f"a minute), then {DEFAULT_STEPS} steps of batch {DEFAULT_BATCH_SIZE}: about 25-31 "
            "minutes in all on a 2-core CPU (measured), 0.12-0.15 s a step. Try --steps 500 "
            "(about 2 minutes) first."
        ),
    )
    t.add_argument("-o", "--out", "--output", dest="output", required=True,
                   help="checkpoint path to write (.pt)")  # fmt: skip
    t.add_argument("--model", default=None,
                   help="registered model name (default: roadseg_s)")  # fmt: skip
    t.add_argument("--steps", type=_positive_int, default=None,
                   help=f"optimisation steps (default: {DEFAULT_STEPS})")  # fmt: skip
    t.add_argument("--batch-size", type=_positive_int, default=None,
                   help=f"frames per step (default: {DEFAULT_BATCH_SIZE}, or every training "
                   "frame when there are fewer)")  # fmt: skip
    t.add_argument("--seed", type=int, default=None, help="(default: 0)")
    t.add_argument("--streams", type=_positive_int, default=None,
                   help=f"drives per town (default: {data.streams})")  # fmt: skip
    t.add_argument("--towns", nargs="+", default=None,
                   help=f"source towns (default: {' '.join(data.towns)})")  # fmt: skip
    t.add_argument("--frames-per-stream", type=_positive_int, default=None,
                   help=f"frames per drive, one in {data.stride} kept "
                   f"(default: {data.frames_per_stream})")  # fmt: skip
    t.add_argument("--val-streams", type=_positive_int, default=None,
                   help=f"held-out drives per town (default: {data.val_streams})")  # fmt: skip
    t.add_argument("--threads", type=_positive_int, default=None,
                   help="torch threads (default: torch's own choice)")  # fmt: skip
    t.add_argument("--augment", choices=AUGMENT_NAMES, default=None,
                   help="pixel-level augmentation after the crop and flip (default: none; "
                   "photometric trained roadseg_s_photo)")  # fmt: skip
    t.add_argument("--device", default="cpu",
                   help="cpu, auto (CUDA when present), cuda or cuda:N (default: cpu: the bundled "
                   "weights are reproduced bit for bit on the CPU only)")  # fmt: skip
    t.add_argument("--quiet", action="store_true", help="no progress bars")

    add_dataset_parsers(sub)
    return p


# --------------------------------------------------------------------------- commands
def _cmd_run(a: argparse.Namespace) -> int:
    for name in ("sim", "perception"):
        _own(name)
    from scenarios._runner import run_scenario
    from scenarios._validate import load_scenario

    scenario: Any = a.scenario
    out = a.out
    if out is None or a.set:
        scenario = load_scenario(a.scenario, overrides=a.set)
    if out is None:
        out = RUNS / scenario.name
        # the schema allows plain folder names only; this keeps it so whatever it becomes
        if out.resolve().parent != RUNS.resolve():
            raise BadInput(f"run: name {scenario.name!r} would leave the {RUNS}/ folder")
    if a.dry_run:
        return _dry_run(scenario, Path(out), a)
    summary = run_scenario(scenario, out, executor=a.executor, workers=a.workers,
                           quiet=a.quiet, device=a.device)  # fmt: skip
    if not a.no_report:
        _try_report(summary.run_dir, quiet=a.quiet)
    n_failed = len(summary.failed)
    line = (f"{summary.total} cells: {summary.done} done ({summary.skipped} from before), "
            f"{n_failed} failed; results in {summary.run_dir}")  # fmt: skip
    if not a.quiet or n_failed:
        print(line, file=sys.stderr)
    if n_failed:
        for cid, err in sorted(summary.failed.items())[:20]:
            print(f"  failed {cid}: {err}", file=sys.stderr)
        if n_failed > 20:
            print(f"  ... and {n_failed - 20} more (roadshift export)", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _dry_run(scenario: Any, out: Path, a: argparse.Namespace) -> int:
    """Validate everything a run needs, print the plan and an estimate; write nothing."""
    from scenarios._estimate import describe_plan
    from scenarios._runner import prepare_run

    prep = prepare_run(scenario, out, executor=a.executor, workers=a.workers, device=a.device)
    workers = a.workers or os.cpu_count() or 1
    for line in describe_plan(prep.units, prep.scenario, prep.model_name, workers):
        print(line)
    return EXIT_OK


def _build_report() -> Any | None:
    try:
        from reports import build_report
    except ImportError:  # matplotlib or Jinja2 missing: results are stored, no report
        return None
    return build_report


def _try_report(run_dir: Path, quiet: bool) -> None:
    build = _build_report()
    if build is None:
        return
    try:
        paths = build(run_dir, quiet=quiet)
    except Exception as exc:
        print(f"roadshift: warning: report not built: {type(exc).__name__}: {exc}", file=sys.stderr)
        return
    if not quiet and isinstance(paths, dict) and paths.get("html"):
        print(f"report: {paths['html']}", file=sys.stderr)


def _cmd_report(a: argparse.Namespace) -> int:
    from reports import ResultsStore

    ResultsStore(a.run_dir).close()  # NoResultsError (exit 2) before anything else
    build = _build_report()
    if build is None:
        raise BadInput("report: the reports package is not available")
    paths = build(Path(a.run_dir), quiet=a.quiet)
    if isinstance(paths, dict):
        for key, value in paths.items():
            print(f"{key}: {value}")
    return EXIT_OK


def _cmd_export(a: argparse.Namespace) -> int:
    from scenarios._export import export_csv, export_segments_csv

    print((export_segments_csv if a.segments else export_csv)(a.run_dir, a.output))
    return EXIT_OK


def _first_line(text: str | None) -> str:
    lines = _plain(text).strip().splitlines()
    return lines[0].strip() if lines else ""


def _cmd_list(a: argparse.Namespace) -> int:
    rows: list[tuple[str, str]] = []
    if a.what == "scenarios":
        from scenarios._schema import describe_bundled

        rows = sorted(describe_bundled().items())
    elif a.what == "corruptions":
        sim = _own("sim")
        for name in sim.corruption_names():
            info = sim.corruption_info(name)
            rows.append((name, f"[{info.family}] {_first_line(info.description)}"))
        for group, members in sim.corruption_groups().items():
            rows.append((group, f"[group of {len(members)}] {', '.join(members)}"))
    elif a.what == "methods":
        perception = _own("perception")
        for name in perception.adapter_names():
            info = perception.adapter_info(name)
            rows.append((name, f"{_first_line(info.description)} [{info.origin}]"))
            if info.error is None:  # the method's traits, indented under it
                rows.append(("", f"  {info.summary()}"))
    else:
        perception = _own("perception")
        from perception._models import MODELS  # the model registry: builders and docstrings

        for name in perception.model_names():
            doc = _first_line(MODELS.get(name).__doc__)
            tags = [
                "test model: tiny, for fast tests" if name.startswith("test_") else "",
                "bundled weights" if name in perception.pretrained_names() else "",
                "default" if name == perception.DEFAULT_MODEL else "",
            ]
            tag = "".join(f" [{t}]" for t in tags if t)
            rows.append((name, f"{doc}{tag}"))
    width = max((len(n) for n, _ in rows), default=0)
    for name, desc in rows:
        print(f"{name:<{width}}  {desc}".rstrip())
    return EXIT_OK


def _cmd_preview(a: argparse.Namespace) -> int:
    import cv2

    sim = _own("sim")

    out = Path(a.output)
    if out.suffix.lower() != ".png":
        raise BadInput(f"preview: --output must end in .png, got {str(out)!r}")
    if not out.parent.is_dir():
        raise BadInput(f"preview: --output folder {str(out.parent)!r} does not exist")
    names = None
    if a.corruption:
        from sim.corruptions.catalogue import expand_corruptions

        try:
            names = expand_corruptions(a.corruption)
        except ValueError as exc:
            raise BadInput(f"preview: --corruption: {exc}") from None
    if a.frame < 0:
        raise BadInput(f"preview: --frame must be >= 0, got {a.frame}")
    world = {k: v for k, v in (("town", a.town), ("time_of_day", a.time_of_day),
                               ("weather", a.weather)) if v is not None}  # fmt: skip
    config = sim.WorldConfig(height=a.height, width=a.width, **world)
    frames = sim.render_stream(config, a.seed, a.frame + 1)
    frame = None
    for frame in frames:  # noqa: B007 - the last frame of the short drive is the one shown
        continue
    severities = tuple(a.severity) if a.severity else (1, 2, 3, 4, 5)
    sheet = sim.contact_sheet(frame.image, corruptions=names, severities=severities,
                              seed=a.seed, depth=frame.depth)  # fmt: skip
    try:
        written = cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    except cv2.error:
        written = False
    if not written:
        raise BadInput(f"preview: cannot write {str(out)!r}")
    print(out)
    return EXIT_OK


def _cmd_train(a: argparse.Namespace) -> int:
    from scenarios._train_data import train_default

    for name in ("sim", "perception"):
        _own(name)
    out = Path(a.output)
    if out.is_dir():
        raise BadInput(f"train: --out {str(out)!r} is a folder; give a file name such as m.pt")
    if not out.parent.is_dir():
        raise BadInput(f"train: --out folder {str(out.parent)!r} does not exist")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise BadInput(f"train: --out: cannot write in {str(out.parent)!r} (permission denied)")
    result = train_default(
        out, model=a.model, steps=a.steps, batch_size=a.batch_size, seed=a.seed,
        streams=a.streams, towns=a.towns, frames_per_stream=a.frames_per_stream,
        val_streams=a.val_streams, threads=a.threads, augment=a.augment, quiet=a.quiet,
        device=a.device,
    )  # fmt: skip
    miou = ((getattr(result, "meta", None) or {}).get("val_metrics") or {}).get("miou")
    tail = f" (clean validation mIoU {miou:.3f})" if isinstance(miou, float) else ""
    print(f"{getattr(result, 'path', None) or out}{tail}")
    return EXIT_OK


def _cmd_render_dataset(a: argparse.Namespace) -> int:
    _own("sim")
    from scenarios._dataset_commands import cmd_render_dataset

    return cmd_render_dataset(a)


def _cmd_corrupt_dataset(a: argparse.Namespace) -> int:
    _own("sim")
    from scenarios._dataset_commands import cmd_corrupt_dataset

    return cmd_corrupt_dataset(a)


_COMMANDS = {
    "run": _cmd_run,
    "report": _cmd_report,
    "export": _cmd_export,
    "list": _cmd_list,
    "preview": _cmd_preview,
    "train": _cmd_train,
    "render-dataset": _cmd_render_dataset,
    "corrupt-dataset": _cmd_corrupt_dataset,
}


#: What Ctrl-C leaves behind, per command.
_INTERRUPTED = {
    "run": "interrupted (run the same command again to resume: finished cells are kept)",
    "train": "interrupted (no checkpoint was written)",
    "corrupt-dataset": "interrupted (run the same command again to resume: finished frames "
    "are kept)",
    "render-dataset": "interrupted (the output folder is incomplete: remove it and start again)",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``roadshift``; returns the exit status."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from reports import NoResultsError

    command = None
    try:
        args = _parser().parse_args(argv)
        command = args.command
        _check_own_packages()
        return _COMMANDS[command](args)
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_OK
    except BadInput as exc:
        _one_line(exc)
    except (ValueError, TypeError) as exc:
        # ``run`` validates everything up front and raises ScenarioError for bad input; any
        # other error there is a bug and keeps its traceback. Elsewhere ValueError/TypeError
        # are the libraries' one-line bad-input errors.
        if command == "run" and not _is_input_error(exc, NoResultsError):
            raise
        _one_line(exc)
    except KeyboardInterrupt:
        print(f"roadshift: {_INTERRUPTED.get(command or '', 'interrupted')}", file=sys.stderr)
        return 130
    return EXIT_BAD_INPUT


def _check_own_packages() -> None:
    """roadshift's packages must be the ones installed beside this one, not a ``sim.py`` in the
    current folder or another distribution's package of the same name earlier on the path.
    Found before anything is imported (a foreign module may do anything on import)."""
    home = Path(__file__).resolve().parent.parent
    for name in _MARKERS:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
        if origin is None or origin.parent.parent != home:
            where = str(origin) if origin is not None else "nothing importable"
            raise BadInput(
                f"{name!r} resolves to {where}, not roadshift's own package in {home}; a module "
                f"or package named {name!r} earlier on the import path (the current folder, "
                "PYTHONPATH) shadows it: rename it or run from another folder"
            )


def _own(name: str) -> ModuleType:
    """Import one of roadshift's packages and check it is ours (another distribution may have
    installed a package of the same name over it)."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise BadInput(f"importing {name!r} failed: {_first_line(str(exc))}") from None
    if not hasattr(module, _MARKERS[name]):
        raise BadInput(
            f"{name!r} ({getattr(module, '__file__', '?')}) is not roadshift's package (it has "
            f"no {_MARKERS[name]}); another distribution installed a package of that name"
        )
    return module


def _is_input_error(exc: BaseException, *extra: type) -> bool:
    from scenarios._schema import ScenarioError

    return isinstance(exc, (ScenarioError, *extra))


def _one_line(exc: BaseException) -> None:
    lines = str(exc).strip().splitlines()
    print(f"roadshift: error: {lines[0] if lines else type(exc).__name__}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
