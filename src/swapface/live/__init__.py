"""Live swapping: a camera stream swapped frame by frame with as little delay as the CPU allows.

- :mod:`.engine` turns one camera frame into a swapped frame (tracked analysis, source analysed once);
- :mod:`.hub` holds the live sessions of a service and shares the CPU between them, newest frame first;
- :mod:`.routes` is the HTTP/WebSocket face of the hub, used by the page at ``/live``;
- :mod:`.camera` reads a local camera and writes a virtual camera and/or a recording (``swapface live --camera``).
"""
