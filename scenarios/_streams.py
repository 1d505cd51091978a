"""Clean streams rendered once and shared: a flat on-disk cache.

Each distinct (world, seed, size, frames, in-sim conditions) is rendered once into
``<cache>/<key>/`` as raw frame-major files (images uint8, labels uint8, depth float32) and read
back a batch at a time with plain file reads, so neither writing nor reading ever holds a whole
stream in memory (memory maps would grow the resident set as frames are touched). The folder is
renamed into place only when complete, so a killed run never leaves half a stream behind.

Local workers share the run folder's ``cache/`` (one rendering per stream for the whole run,
kept across a resume). Ray workers may run where the run folder does not exist: the workers of a
node share a temporary folder of that node, named after the run (:func:`node_cache`), which the
driver has removed on every node when the run ends (Ray kills its workers without running their
exit handlers, so a worker cannot clean up after itself).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from scenarios._cells import StreamSpec

__all__ = ["StreamReader", "ensure_stream", "node_cache", "remove_node_cache", "stream_path"]

_FILES = (("image", np.uint8, 3), ("semantic", np.uint8, 0), ("depth", np.float32, 0))


def stream_path(cache: str | Path, spec: StreamSpec) -> Path:
    return Path(cache) / spec.key


def node_cache(run_token: str) -> Path:
    """The stream cache a run's workers share on this node (in its temporary folder)."""
    return Path(tempfile.gettempdir()) / f"roadshift-streams-{run_token}"


def remove_node_cache(run_token: str) -> None:
    """Remove this node's stream cache of a run (the run has ended)."""
    shutil.rmtree(node_cache(run_token), ignore_errors=True)


def ensure_stream(cache: str | Path, spec: StreamSpec) -> Path:
    """Render ``spec`` into ``cache`` unless it is already there; return its folder."""
    import sim

    final = stream_path(cache, spec)
    if (final / "stream.json").is_file():
        return final
    tmp = final.parent / f".{spec.key}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    config = sim.WorldConfig(height=spec.height, width=spec.width, **spec.world)
    conditions = None
    if spec.conditions is not None:
        schedule = sim.make_schedule(spec.conditions)
        n = spec.frames

        def conditions(i: int) -> dict | None:
            return schedule.state(i, n).world

    files = {name: open(tmp / f"{name}.bin", "wb") for name, _, _ in _FILES}
    count = 0
    try:
        for frame in sim.render_stream(config, spec.seed, spec.frames, conditions=conditions):
            files["image"].write(np.ascontiguousarray(frame.image, np.uint8).tobytes())
            files["semantic"].write(np.ascontiguousarray(frame.semantic, np.uint8).tobytes())
            files["depth"].write(np.ascontiguousarray(frame.depth, np.float32).tobytes())
            count += 1
    finally:
        for f in files.values():
            f.close()
    if count != spec.frames:
        raise RuntimeError(f"render_stream gave {count} frames, expected {spec.frames}")
    (tmp / "stream.json").write_text(
        json.dumps({"frames": spec.frames, "height": spec.height, "width": spec.width})
    )
    try:
        os.replace(tmp, final)
    except OSError:  # another worker finished the same stream first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return final


class StreamReader:
    """Reads frames ``[start, stop)`` of a cached stream as fresh arrays (no memory maps)."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        info = json.loads((folder / "stream.json").read_text())
        self.frames = int(info["frames"])
        self.height, self.width = int(info["height"]), int(info["width"])
        self._files = {name: open(folder / f"{name}.bin", "rb") for name, _, _ in _FILES}

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Images (n, H, W, 3) uint8, labels (n, H, W) uint8, depth (n, H, W) float32."""
        out = []
        for name, dtype, channels in _FILES:
            shape = (self.height, self.width) + ((channels,) if channels else ())
            per = int(np.prod(shape)) * np.dtype(dtype).itemsize
            f = self._files[name]
            f.seek(start * per)
            buf = f.read((stop - start) * per)
            out.append(np.frombuffer(bytearray(buf), dtype=dtype).reshape(stop - start, *shape))
        return out[0], out[1], out[2]

    def close(self) -> None:
        for f in self._files.values():
            f.close()

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
