"""Where models run: ``auto`` (CUDA when a CUDA device is present), ``cpu``, ``cuda`` or ``cuda:N``.

What is reproducible where:

- **CPU**: every computation in roadshift is bit-deterministic: the same seed and inputs give the
  same bits, run after run, whatever the worker count.
- **CUDA**: results differ from the CPU's in the last bits (other kernels, other summation
  orders), so a CUDA run never reproduces a CPU run's numbers bit for bit. Run to run on the same
  GPU and software, forward passes (``source``, ``bn``) use deterministic kernels once
  ``torch.backends.cudnn.deterministic`` is set, which ``resolve_device`` does for CUDA; the
  backward pass of bilinear upsampling and of the transposed-convolution head accumulates with
  atomic adds, so anything that trains (``train``, ``tent``) is not bit-reproducible on CUDA.
"""

from __future__ import annotations

import torch

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The ``torch.device`` for ``device``: ``"auto"`` (or ``None``) is CUDA when available,
    else the CPU; ``"cuda"`` / ``"cuda:N"`` must name a device that exists.

    Raises ``ValueError`` (one line naming the valid choices) for anything else.
    """
    spec = "auto" if device is None else str(device)
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        index = spec.partition(":")[2]
        if index and not index.isdigit():
            raise ValueError(f"device {spec!r}: a CUDA index is a number, e.g. cuda:0")
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {spec!r}: no CUDA device is available to torch {torch.__version__}; "
                "valid choices here: auto, cpu"
            )
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise ValueError(f"device {spec!r}: only {count} CUDA device(s), cuda:0..{count - 1}")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        return torch.device(spec)
    raise ValueError(f"unknown device {spec!r}; valid choices: auto, cpu, cuda, cuda:N")


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued work (CUDA runs asynchronously; timings need this)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe_device(device: torch.device) -> str:
    """A short human description: ``cpu (2 threads)`` or ``cuda:0 (NVIDIA H200)``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads)"
