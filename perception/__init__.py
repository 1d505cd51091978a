"""roadshift's perception: segmentation models, metrics and test-time adaptation methods.

Works on plain tensors; it never imports the simulator.
"""

from __future__ import annotations

# --- models, training, metrics (issue 4) ---

# --- adaptation methods (issue 5) ---

__all__: list[str] = []
