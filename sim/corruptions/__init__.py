"""Image corruptions (ImageNet-C and driving faults), shift schedules, the Gymnasium wrapper and
contact sheets.

Pure NumPy/OpenCV: usable on any uint8 RGB image or image environment, not only the world's.
Internal to ``sim``: the public names (``sim.corrupt``, ``sim.corrupt_frame``,
``sim.corruption_names``, ``sim.make_schedule``, ``sim.CorruptionWrapper``, ...) are
re-exported from ``sim``. Importing this package loads nothing; ``catalogue`` loads every family.
"""
