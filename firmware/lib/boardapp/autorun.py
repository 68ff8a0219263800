# The TLS session the board starts on its own (autorun), whenever a host bridges it:
# RUN's options plus "every_s" (seconds from one start to the next; 0: once a boot),
# kept in autorun.json on the flash. A session starts once the host connected now has
# given the time (SYNC forgets the last host's), so `hsmtls board autorun`, which only
# configures, starts nothing, and `hsmtls bridge` carries every one. Imported only by a
# board that has autorun.json or is told about one: the others pay no heap for it.

from hsmlink import protocol as P

FILE = "autorun.json"
MAX_EVERY_S = 500000  # ticks_diff() is right up to 2^29 ms (6.2 days) on an ESP32
_last = None  # ticks_ms when the last one started (None: the next at once)
_count = 0


def _check(opts):
    if not isinstance(opts, dict):
        raise ValueError("autorun opts must be an object")
    every = opts.get("every_s", 0)
    if not isinstance(every, int) or every < 0:
        raise ValueError("every_s must be a whole number of seconds, 0 for once a boot")
    if every > MAX_EVERY_S:
        raise ValueError("every_s must be at most %d (the board's ms tick wraps after 2^29)" % MAX_EVERY_S)


def configure(board, opts):
    # AUTORUN from the host: keep these opts (None: off, the file removed)
    board.autorun_error = None
    if opts is None:
        import os

        try:
            os.remove(board.port.flash_path(FILE))
        except OSError:
            pass
        board.autorun = None
        return
    _check(opts)
    global _last
    board._write(FILE, P.pack(opts))
    board.autorun = opts
    _last = None  # the first as soon as a host gives the time


def read(board):
    # the file's opts; OSError when there is none, ValueError when they are bad
    with open(board.port.flash_path(FILE), "rb") as f:
        opts = P.unpack(f.read())
    if not opts:
        raise ValueError("not a JSON object")
    _check(opts)
    return opts


def load(board):
    # at boot: the file's opts, or an ERROR saying why they are ignored
    try:
        opts = read(board)
    except (OSError, ValueError) as e:
        # said to every host that connects, until AUTORUN replaces the file
        board.autorun_error = "%s ignored: %s" % (FILE, e)
        return
    board.autorun = opts


def step(board):
    # -> True if it started a session (the caller checked board.autorun and board.time):
    # as the host's RUN does, with "autorun": n added, which RESULT repeats
    global _last, _count
    opts = board.autorun
    port = board.port
    now = port.ticks_ms()
    every = opts.get("every_s", 0)
    if _last is not None and port.ticks_diff(now, _last) < every * 1000:
        return False
    _last = now
    if not every:
        board.autorun = None  # once a boot; the file stays for the next
    _count += 1
    run = dict(opts)
    run.pop("every_s", None)
    run["autorun"] = _count
    board.on_frame(P.RUN, P.pack(run))
    return True
