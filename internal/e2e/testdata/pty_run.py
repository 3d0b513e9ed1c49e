# Runs a full-screen program in a pseudo terminal with TERM=dumb and no
# keyboard input, for programs (neomutt) that only read mailboxes with a
# terminal. Prints what the program wrote to the terminal and exits with
# its status; kills it after TIMEOUT seconds.
#
# usage: pty_run.py TIMEOUT PROGRAM [ARGS...]
import os
import pty
import select
import signal
import sys
import time

timeout, argv = float(sys.argv[1]), sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.environ["TERM"] = "dumb"
    os.environ["COLUMNS"], os.environ["LINES"] = "100", "30"
    os.execvp(argv[0], argv)

out = bytearray()
deadline = time.monotonic() + timeout
status = None
while status is None:
    if time.monotonic() > deadline:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        sys.stdout.write(out.decode(errors="replace") + "\npty_run: timed out\n")
        sys.exit(124)
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            b = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            b = b""
        out += b[: max(0, (1 << 20) - len(out))]
        if b:
            continue
    p, st = os.waitpid(pid, os.WNOHANG)
    if p:
        status = os.waitstatus_to_exitcode(st)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(status)
