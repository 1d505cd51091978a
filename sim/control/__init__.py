"""Torch-free control from label maps: lane tracking, obstacles, the controller, closed loops.

``road`` (the lane's centre line from the road edges a label map shows, tracked with a Kalman
filter), ``obstacles`` (vehicles and people where they meet the ground), ``controller`` (pure
pursuit and the Intelligent Driver Model: label map in, ``(steer, throttle)`` out) and
``drives`` (batches of closed-loop drives that perception steers, scored for failures).
"""
