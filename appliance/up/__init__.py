"""The process tree: `appliance up` runs Xvfb, PulseAudio, openbox, the scene renderer, the
on-screen terminal, the content window and the controller under supervisord.

- :mod:`.tree`   the tree itself (its environment, supervisord, the controller's exit status)
- :mod:`.hold`   `appliance up` when it cannot start yet: alive, unready, saying why
- :mod:`.place`  where one appliance sits on a host: its display, control port and state volume
- ``__main__``   ``python -m appliance.up`` (tests and benches: a stand-in controller)
"""
