"""The Gymnasium environment over a dataset on disk (Cityscapes, ACDC, pairs, a video)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sim.data.dataset import FolderDataset, Sample
from sim.data.spec import DataError, DataSpec


class FolderStreamEnv(gym.Env):
    """Your own data as a stream: the frames of a dataset on disk, in file order.

    ## Description

    Each step returns the next frame of a dataset in one of the layouts ``cityscapes``,
    ``acdc``, ``pairs`` or ``video`` (see ``sim.data.DataSpec``), with its ground truth in
    ``info`` exactly like ``roadshift/DrivingStream-v0``, so ``sim.CorruptionWrapper`` and
    everything downstream work unchanged. Frames come in file order (Cityscapes: city, then
    sequence and frame; ACDC: the conditions in the order given; a video: its frames), so
    sequences stay sequences. Frames are resized to ``height x width`` (labels and depth by
    nearest neighbour) or kept at their native size.

    ## Observation Space

    ``Box(0, 255, (height, width, 3), uint8)``: the RGB image. At the native size the first
    frame fixes the shape; a frame of another size is an error naming its file.

    ## Action Space

    ``Box(-1, 1, (2,), float32)``, as in ``DrivingStream-v0``; recorded data cannot react, so
    **the action is ignored**.

    ## Rewards

    Always 0: recorded data has no progress to reward.

    ## Episode End

    - Termination: never.
    - Truncation: at the dataset's last frame (the step that returns it). Stepping past it is
      an error; call ``reset()``.

    ## Info

    - ``semantic``: uint8 (H, W) Cityscapes trainIds (0..18; 255 = ignore), when the dataset
      has labels (absent otherwise: label-free data).
    - ``depth``: float32 (H, W) metres, ``+inf`` where there is no depth, when every frame
      has a depth file (absent otherwise).
    - ``conditions``: ``{"layout", "split", "condition", "path"}``: where the frame comes
      from (``condition``: the ACDC condition, else None; ``path``: relative to the root).
    - ``shift``: ``{"corruption": None, "severity": 0}`` (wrappers that corrupt fill it in).
    - ``frame``: the frame's index in the dataset.

    ## Arguments

    ```python
    import gymnasium as gym
    import sim  # registers the environment

    env = gym.make("roadshift/FolderStream-v0", root="${CITYSCAPES_ROOT}",
                   layout="cityscapes", split="val", height=128, width=256)
    ```

    - ``root``, ``layout``, ``split``, ``conditions``, ``labels``, ``label_map``,
      ``palette``, ``masks``: the dataset (``sim.data.DataSpec``; ``${VAR}`` in a path reads
      an environment variable).
    - ``height``, ``width``: frame size in pixels (16..4096); both None (default) keeps the
      native size.
    - ``render_mode``: ``None`` or ``"rgb_array"`` (``render()`` returns the last frame).

    ``reset(seed=..., options={"start": k})`` starts at frame ``k`` (default 0). The stream
    does not depend on the seed: the data is what it is.

    ## Version History

    - v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012 (gym idiom)

    def __init__(
        self,
        root: str,
        layout: str,
        split: str | None = None,
        conditions: list[str] | None = None,
        labels: str = "auto",
        label_map: dict[int, int] | None = None,
        palette: dict[int, list[int]] | None = None,
        masks: str | None = None,
        height: int | None = None,
        width: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; valid choices: None, rgb_array")
        spec = DataSpec(
            root=root,
            layout=layout,
            split=split,
            conditions=None if conditions is None else tuple(conditions),
            labels=labels,
            label_map=label_map,
            palette=palette,
            masks=masks,
        )
        self.dataset = FolderDataset(spec, height, width)
        self.render_mode = render_mode
        first = self.dataset.read(0)
        self._shape = first.image.shape
        self.observation_space = spaces.Box(0, 255, self._shape, np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._index = -1
        self._sample: Sample | None = None

    def __len__(self) -> int:
        """The stream's length: the dataset's frame count."""
        return len(self.dataset)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        start = 0
        if options:
            unknown = set(options) - {"start"}
            if unknown:
                raise ValueError(
                    f"unknown reset option {sorted(unknown)[0]!r}; valid choices: start"
                )
            start = options.get("start", 0)
            if (
                isinstance(start, bool)
                or not isinstance(start, (int, np.integer))
                or not (0 <= start < len(self))
            ):
                raise ValueError(f"start must be a frame index in [0, {len(self)}), got {start!r}")
        self._index = int(start)
        return self._observe()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._index < 0:
            raise RuntimeError("call reset() before step()")
        if self._index + 1 >= len(self):
            raise RuntimeError(
                f"the stream ended at frame {len(self) - 1} (the dataset has {len(self)} frames); "
                "call reset()"
            )
        self._index += 1
        obs, info = self._observe()
        return obs, 0.0, False, self._index == len(self) - 1, info

    def render(self) -> np.ndarray | None:
        if self.render_mode == "rgb_array" and self._sample is not None:
            return self._sample.image.copy()
        return None

    def close(self) -> None:
        self.dataset.close()

    def _observe(self) -> tuple[np.ndarray, dict[str, Any]]:
        sample = self.dataset.read(self._index)
        if sample.image.shape != self._shape:
            raise DataError(
                f"{sample.record.image}: is {sample.image.shape[0]}x{sample.image.shape[1]}, the "
                f"stream's frames are {self._shape[0]}x{self._shape[1]}; give height and width "
                "to resize every frame"
            )
        self._sample = sample
        spec = self.dataset.spec
        info: dict[str, Any] = {}
        if sample.semantic is not None:
            info["semantic"] = sample.semantic
        if sample.depth is not None and self.dataset.has_depth:
            info["depth"] = sample.depth
        info.update(
            conditions={
                "layout": spec.layout,
                "split": spec.split,
                "condition": sample.record.condition,
                "path": str(sample.record.rel),
            },
            shift={"corruption": None, "severity": 0},
            frame=self._index,
        )
        return sample.image, info
