"""A Ray run whose workers cannot touch the run folder, as on a cluster without a shared disk.

``python -m tests.scenarios.ray_guard SCENARIO OUT`` starts a local Ray cluster whose every worker
process installs an audit hook (:func:`install`, Ray's ``worker_process_setup_hook``) that raises
``PermissionError`` on any open, listing, creation, rename or removal of a path under ``OUT``;
checks that the hook is active; then runs ``SCENARIO`` into ``OUT`` with ``--executor ray``
semantics (``run_scenario(..., executor="ray")`` uses the session started here). A worker that
reads the model from the folder, renders into its cache or writes a sample there fails its cells.
Exit status 0 when the run stored every cell.
"""

from __future__ import annotations

import os
import sys

FORBIDDEN = "ROADSHIFT_TEST_FORBIDDEN"
_EVENTS = {
    "open", "os.listdir", "os.scandir", "os.mkdir", "os.rename", "os.replace", "os.remove",
    "os.rmdir", "os.truncate", "shutil.rmtree", "shutil.copyfile", "os.chmod", "os.utime",
}  # fmt: skip


def install() -> None:
    """Worker set-up: forbid every file operation under the run folder in this process."""
    forbidden = os.path.realpath(os.environ[FORBIDDEN])

    def hook(event: str, args: tuple) -> None:
        if event not in _EVENTS or not args or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        path = os.path.realpath(os.fsdecode(args[0]))
        if path == forbidden or path.startswith(forbidden + os.sep):
            raise PermissionError(f"a Ray worker touched the run folder: {event} {path}")

    sys.addaudithook(hook)


def _probe(path: str) -> str:
    try:
        with open(path, "w"):
            return "opened"
    except PermissionError as exc:
        return str(exc)


def main(scenario: str, out: str) -> int:
    import ray

    from scenarios import run_scenario

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={
            "worker_process_setup_hook": "tests.scenarios.ray_guard.install",
            "env_vars": {FORBIDDEN: out, "PYTHONPATH": root, "OMP_NUM_THREADS": "1"},
        },
    )
    try:
        probe = ray.get(ray.remote(_probe).remote(os.path.join(out, "probe")))
        if "touched the run folder" not in probe:
            print(f"the guard is not active in Ray workers: {probe}", file=sys.stderr)
            return 3
        summary = run_scenario(scenario, out, executor="ray", workers=2, quiet=True)
    finally:
        ray.shutdown()
    for cid, error in sorted(summary.failed.items()):
        print(f"failed {cid}: {error}", file=sys.stderr)
    return 0 if summary.ok and summary.done == summary.total else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
