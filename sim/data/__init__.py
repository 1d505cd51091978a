"""Datasets on disk: reading Cityscapes, ACDC, image/label pairs and videos, writing our own.

Torch-free like the rest of ``sim``. ``spec`` (what a dataset is, ``${VAR}`` paths, one-line
errors), ``labels`` (the official Cityscapes labelIds table, colour palettes, label maps),
``layouts`` (each layout's naming rule, used both to find frames and to name written files),
``files`` (image, label, depth and video I/O, atomic writes), ``dataset`` (``FolderDataset``:
frames in file order, resized on request), ``render`` (the world exported as a dataset) and
``corrupt`` (a dataset corrupted like Cityscapes-C, parallel and resumable). The Gymnasium
view of a dataset is ``sim.envs.folder``.
"""
