"""Gymnasium environments over the procedural world and over datasets on disk, and their
registration.

``sim.envs.registration`` registers the ids without importing the environments (``import sim``
calls it), so Gymnasium loads the world only when an environment is made.
"""
