"""A shift's corrupted frames, made once, in natural order, whatever order a protocol shows them.

Corruption draws come from one generator per (seed, shift label, severity), consumed frame by
frame in the clean stream's natural order, and frame-to-frame corruptions (a dropped frame
repeats the previous one) chain in that order too. So a shift's frames are the same bits in a
``reset_each_shift`` cell, in every round of a ``continual`` stream and scattered through a
``mixed`` one. A shift shown more than once or out of order keeps its frames in a temporary file
(frame-major, plain reads: no memory maps), so memory stays one batch whatever the stream length.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from scenarios._cells import Shift, stable_int
from scenarios._sources import FrameReader

__all__ = ["ShiftFrames", "corruption_rng"]


def corruption_rng(seed: int, shift: Shift) -> np.random.Generator:
    """The generator of a shift's corruption draws (the same in every protocol)."""
    return np.random.default_rng(
        np.random.SeedSequence([seed, stable_int(shift.label, shift.severity)])
    )


class ShiftFrames:
    """Corrupted frames of one shift over a clean stream, produced in natural order.

    ``get(i)`` returns (observed image, ground truth, (corruption, severity)) of natural frame
    ``i``. With ``keep`` false the frames must be asked for once each, in order (nothing is
    stored); with ``keep`` true they are written to a temporary file in ``folder`` as they are
    made and may be asked for again, in any order.
    """

    def __init__(
        self, shift: Shift, reader: FrameReader, seed: int, *, keep: bool = False,
        folder: str | Path | None = None,
    ) -> None:  # fmt: skip
        import sim

        self.shift = shift
        self.reader = reader
        self.n = reader.stream.frames
        self.schedule = sim.make_schedule(shift.schedule) if shift.kind == "schedule" else None
        self._rng = corruption_rng(seed, shift)
        self._pattern_seed = stable_int("pattern", seed)  # one camera per seed: same dirt
        self._previous: np.ndarray | None = None
        self._made = 0
        self._states: list[tuple[str | None, float]] = []
        self._file: Any = None
        self._shape: tuple[int, int] | None = None
        if keep:
            fd, name = tempfile.mkstemp(prefix=".shift-", suffix=".tmp", dir=folder)
            self._file = os.fdopen(fd, "w+b")
            self._path = Path(name)

    def state(self, i: int) -> tuple[str | None, float]:
        """The corruption and severity at natural frame ``i``."""
        if self.schedule is not None:
            st = self.schedule.state(i, self.n)
            return st.corruption, float(st.severity)
        if self.shift.kind == "static":
            return self.shift.corruption, float(self.shift.severity)
        return None, 0.0

    def get(self, i: int) -> tuple[np.ndarray, np.ndarray, tuple[str | None, float]]:
        if i < self._made:
            if self._file is None:
                raise RuntimeError(
                    f"frame {i} of shift {self.shift.label!r} asked for twice without keep=True"
                )
            return (*self._read(i), self._states[i])
        out = None
        while self._made <= i:  # make every frame up to i, in natural order
            out = self._make(self._made)
            if self._file is not None:
                self._write(*out)
            self._made += 1
        assert out is not None
        return out[0], out[1], self._states[i]

    def _make(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        import sim

        image, labels, depth = self.reader.read(i)
        corr, sev = self.state(i)
        self._states.append((corr, sev))
        if corr is None or sev <= 0:
            observed, target = image, labels
        else:
            observed, target, _ = sim.corrupt_frame(
                image, labels, depth, corr, sev, self._rng, previous=self._previous,
                pattern_seed=self._pattern_seed,
            )  # fmt: skip
        self._previous = observed
        return np.asarray(observed, np.uint8), np.asarray(target, np.uint8)

    def _write(self, observed: np.ndarray, target: np.ndarray) -> None:
        self._shape = target.shape
        self._file.seek(0, os.SEEK_END)
        self._file.write(np.ascontiguousarray(observed).tobytes())
        self._file.write(np.ascontiguousarray(target).tobytes())

    def _read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        assert self._shape is not None
        h, w = self._shape
        per = h * w * 4
        self._file.seek(i * per)
        buf = self._file.read(per)
        observed = np.frombuffer(bytearray(buf[: h * w * 3]), np.uint8).reshape(h, w, 3)
        target = np.frombuffer(bytearray(buf[h * w * 3 :]), np.uint8).reshape(h, w)
        return observed, target

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._path.unlink(missing_ok=True)
            self._file = None
