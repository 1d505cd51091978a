"""The ``roadshift`` command line: run, report, export, list, preview, train.

Exit status: 0 all good, 1 some cells failed (the rest are stored), 2 bad input. Bad input is
reported as one line on stderr (no traceback) and nothing is created.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from scenarios._train_augment import AUGMENT_NAMES

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class BadInput(Exception):
    """Bad input from the command line; its message is the one line printed."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line instead of usage + message
        raise BadInput(f"{self.prog}: {message}")


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
    p = _Parser(prog="roadshift", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="run (or resume) a scenario into a run folder")
    r.add_argument(
        "scenario", help="a bundled scenario name (roadshift list scenarios) or a YAML path"
    )
    r.add_argument(
        "--out", default=None, help="run folder, resumed if it holds this run (default runs/NAME)"
    )
    r.add_argument("--executor", choices=("local", "ray"), default="local")
    r.add_argument("--workers", type=_positive_int, default=None,
                   help="parallel workers (default: the number of CPU cores)")  # fmt: skip
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--no-report", action="store_true", help="do not build the report at the end")

    rep = sub.add_parser("report", help="(re)build the report of a run folder")
    rep.add_argument("run_dir")
    rep.add_argument("--quiet", action="store_true")

    e = sub.add_parser("export", help="export a run's cells to CSV")
    e.add_argument("run_dir")
    e.add_argument("-o", "--output", required=True, help="the CSV file to write")

    ls = sub.add_parser("list", help="list corruptions, methods, models or scenarios")
    ls.add_argument("what", choices=("corruptions", "methods", "models", "scenarios"))

    pv = sub.add_parser("preview", help="contact sheet of one frame under corruptions (PNG)")
    pv.add_argument("-o", "--output", default="preview.png", help="the PNG to write")
    pv.add_argument("--corruption", action="append", default=None,
                    help="a corruption or group (repeatable; default: all)")  # fmt: skip
    pv.add_argument("--severity", type=_severity, action="append", default=None,
                    help="severity in (0, 5] (repeatable; default: 1 2 3 4 5)")  # fmt: skip
    pv.add_argument("--height", type=_positive_int, default=128)
    pv.add_argument("--width", type=_positive_int, default=256)
    pv.add_argument("--seed", type=int, default=0)
    pv.add_argument("--frame", type=int, default=8, help="which frame of the drive (default 8)")
    pv.add_argument("--town", default=None)
    pv.add_argument("--time-of-day", default=None)
    pv.add_argument("--weather", default=None)

    t = sub.add_parser("train", help="train a model on the simulated world (source domain)")
    t.add_argument("-o", "--out", "--output", dest="output", required=True,
                   help="checkpoint path to write (.pt)")  # fmt: skip
    t.add_argument("--model", default=None, help="registered model name (default: the default)")
    t.add_argument("--steps", type=_positive_int, default=None)
    t.add_argument("--batch-size", type=_positive_int, default=None)
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--streams", type=_positive_int, default=None, help="drives per town")
    t.add_argument("--towns", nargs="+", default=None, help="source towns")
    t.add_argument("--frames-per-stream", type=_positive_int, default=None)
    t.add_argument("--val-streams", type=_positive_int, default=None)
    t.add_argument("--threads", type=_positive_int, default=None, help="torch threads")
    t.add_argument("--augment", choices=AUGMENT_NAMES, default=None,
                   help="pixel-level augmentation after the crop and flip (default: none; "
                        "photometric trained roadseg_s_photo)")  # fmt: skip
    t.add_argument("--quiet", action="store_true")
    return p


# --------------------------------------------------------------------------- commands
def _cmd_run(a: argparse.Namespace) -> int:
    from scenarios._runner import run_scenario
    from scenarios._schema import load_scenario

    scenario: Any = a.scenario
    out = a.out
    if out is None:
        scenario = load_scenario(a.scenario)
        out = Path("runs") / scenario.name
    summary = run_scenario(scenario, out, executor=a.executor, workers=a.workers,
                           quiet=a.quiet)  # fmt: skip
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


def _build_report() -> Any | None:
    try:
        from reports import build_report
    except ImportError:
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
    from scenarios import ResultsStore

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
    from scenarios._export import export_csv

    print(export_csv(a.run_dir, a.output))
    return EXIT_OK


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def _cmd_list(a: argparse.Namespace) -> int:
    rows: list[tuple[str, str]] = []
    if a.what == "scenarios":
        from scenarios._schema import describe_bundled

        rows = sorted(describe_bundled().items())
    elif a.what == "corruptions":
        import sim

        for name in sim.corruption_names():
            info = sim.corruption_info(name)
            rows.append((name, f"[{info.family}] {info.description}"))
    elif a.what == "methods":
        import perception

        for name in perception.adapter_names():
            info = perception.adapter_info(name)
            rows.append((name, f"{_first_line(info.description)} [{info.origin}]"))
    else:
        import perception
        from perception._models import MODELS  # the model registry: builders and docstrings

        for name in perception.model_names():
            doc = _first_line(MODELS.get(name).__doc__)
            tag = " [bundled weights]" if name in perception.pretrained_names() else ""
            default = " (default)" if name == perception.DEFAULT_MODEL else ""
            rows.append((name, f"{doc}{tag}{default}"))
    width = max((len(n) for n, _ in rows), default=0)
    for name, desc in rows:
        print(f"{name:<{width}}  {desc}".rstrip())
    return EXIT_OK


def _cmd_preview(a: argparse.Namespace) -> int:
    import cv2

    import sim

    out = Path(a.output)
    if out.suffix.lower() != ".png":
        raise BadInput(f"preview: --output must end in .png, got {str(out)!r}")
    if not out.parent.is_dir():
        raise BadInput(f"preview: --output folder {str(out.parent)!r} does not exist")
    names = None
    if a.corruption:
        groups = sim.corruption_groups()
        valid = sim.corruption_names()
        names = []
        for c in a.corruption:
            if c in groups:
                names += [x for x in groups[c] if x not in names]
            elif c in valid:
                names += [c] if c not in names else []
            else:
                raise BadInput(
                    f"preview: --corruption: unknown corruption {c!r}; valid choices: "
                    f"{', '.join(valid)}, or a group: {', '.join(sorted(groups))}"
                )
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
    if not cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise BadInput(f"preview: cannot write {str(out)!r}")
    print(out)
    return EXIT_OK


def _cmd_train(a: argparse.Namespace) -> int:
    from scenarios._train_data import train_default

    out = Path(a.output)
    if not out.parent.is_dir():
        raise BadInput(f"train: --out folder {str(out.parent)!r} does not exist")
    result = train_default(
        out, model=a.model, steps=a.steps, batch_size=a.batch_size, seed=a.seed,
        streams=a.streams, towns=a.towns, frames_per_stream=a.frames_per_stream,
        val_streams=a.val_streams, threads=a.threads, augment=a.augment, quiet=a.quiet,
    )  # fmt: skip
    miou = ((getattr(result, "meta", None) or {}).get("val_metrics") or {}).get("miou")
    tail = f" (clean validation mIoU {miou:.3f})" if isinstance(miou, float) else ""
    print(f"{getattr(result, 'path', None) or out}{tail}")
    return EXIT_OK


_COMMANDS = {
    "run": _cmd_run,
    "report": _cmd_report,
    "export": _cmd_export,
    "list": _cmd_list,
    "preview": _cmd_preview,
    "train": _cmd_train,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``roadshift``; returns the exit status."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from scenarios._store import NoResultsError

    command = None
    try:
        args = _parser().parse_args(argv)
        command = args.command
        return _COMMANDS[command](args)
    except SystemExit as exc:  # --help
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
        print("roadshift: interrupted (the run folder can be resumed)", file=sys.stderr)
        return 130
    return EXIT_BAD_INPUT


def _is_input_error(exc: BaseException, *extra: type) -> bool:
    from scenarios._schema import ScenarioError

    return isinstance(exc, (ScenarioError, *extra))


def _one_line(exc: BaseException) -> None:
    lines = str(exc).strip().splitlines()
    print(f"roadshift: error: {lines[0] if lines else type(exc).__name__}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
