"""The live hotline wall: callers waiting, the longest wait, seats talking, free and paused.

:mod:`.state` turns the PBX's queue events into the wall's figures (pure, no I/O);
:mod:`.service` feeds it from every PBX session and reloads it with ``QueueStatus``
after each (re)connect, since the PBX, not the gateway, holds the truth of a queue.
"""
