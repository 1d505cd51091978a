"""The camera renderer: the world's ground, road-side layers and objects into image, labels and
depth, then light and weather.

Internal to ``sim``: users reach it through ``sim.World`` and ``sim.render_stream``.
"""
