"""The procedural world: configuration, town styles and maps, traffic, and the drive itself.

Internal to ``sim``: the public names (``sim.World``, ``sim.WorldConfig``, ``sim.Weather``,
``sim.Frame``, ``sim.render_stream``, ``sim.TOWNS``, ...) are re-exported from ``sim``.
"""
