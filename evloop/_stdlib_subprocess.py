"""evloop._stdlib_subprocess: what evloop.subprocess relies on in CPython's
``subprocess.Popen``, per CPython version, in one place.

Why it exists: evloop's ``Popen`` subclasses the stdlib's class, so that the arguments, the
start of the child, the errors and the attributes are the stdlib's own. It overrides every
public member that waits for the child or reads its pipes (``OVERRIDDEN``) and calls no
private method and reads no private attribute of the stdlib class: the private hooks it used
to override changed under it (3.15 removed ``Popen._remaining_time`` and rewrote
``_communicate`` and ``_wait``). What it still relies on is listed here: the members of the
stdlib's ``Popen`` it inherits unchanged and why none of them blocks the thread on the child
or reaps it behind evloop's child watch (``INHERITED``), and the layers of the pipe file
objects the stdlib's ``__init__`` makes, which evloop rebuilds over cooperative raw files
(``PIPE_LAYERS``). tests/test_stdlib_subprocess.py checks each on the running interpreter, so
a CPython that adds a member to ``Popen`` or changes one of these fails there, naming it and
the version, rather than somewhere inside a program that waits for a child.

What it must not do: patch anything, import evloop, or detect features by reading code
objects. Nothing here is needed at run time (evloop.subprocess does not import it): it is the
record the test checks.

Checked on (``sys.version``): 3.10.13, 3.11.7, 3.12.1, 3.13.0 (pyenv builds);
"3.14.10 (main, Oct 26 2026, 15:12:11) [GCC 16.2.0]" and
"3.15.2 (main, Oct 26 2026, 15:10:10) [GCC 16.2.0]" (Debian unstable's python3.14 and
python3.15). "all" below means those six.
"""
from typing import Dict, Tuple

CHECKED = "3.10.13 3.11.7 3.12.1 3.13.0 3.14.10 3.15.2"

#: The public members evloop's ``Popen`` defines over the stdlib's. All: the stdlib's
#: ``wait``, ``poll``, ``communicate`` and ``__exit__`` block the thread in ``waitpid`` (3.15:
#: ``pidfd_open`` + ``poll`` first) or ``select``, or reap the child with a real ``waitpid``
#: (through the private ``_wait``/``_internal_poll``/``_communicate``); ``send_signal`` polls
#: through ``self.poll()`` before signalling (so a reaped child's reused pid is not signalled),
#: which evloop's does itself rather than rely on it; ``__init__`` is the stdlib's, then
#: watches the child and rebuilds the pipe files.
OVERRIDDEN: Tuple[str, ...] = ("__init__", "__exit__", "communicate", "poll", "send_signal",
                               "wait")

#: Every other public member of ``subprocess.Popen`` (``vars(Popen)``: functions, properties,
#: classmethods; dunders included), each with what it does that makes inheriting it safe.
#: Checked on all; identical there.
INHERITED: Dict[str, str] = {
    "__enter__": "returns self",
    "__del__": "polls the child with a real waitpid(WNOHANG) (the private _internal_poll) only "
               "while returncode is None: evloop's child watch references the Popen until "
               "the child is reaped and the returncode set, so it never runs for a watched "
               "running child; an unwatched one (a thread with its own loop, a forked child) "
               "is the stdlib's to reap, as for its own Popen",
    "__repr__": "reads args and returncode",
    "__class_getitem__": "types.GenericAlias, for annotations",
    "kill": "self.send_signal(SIGKILL): evloop's send_signal polls first",
    "terminate": "self.send_signal(SIGTERM): evloop's send_signal polls first",
    "universal_newlines": "a property over the text_mode attribute __init__ sets",
}

#: ``__init__`` itself (inherited in substance: evloop's calls it first) starts the child and
#: returns without waiting for it, except when the exec fails: then it reads the error from a
#: pipe and reaps the child (which exits at once) with a blocking ``os.waitpid(pid, 0)``,
#: before evloop watches the pid. It makes each pipe file with ``io.open(fd, mode, bufsize)``
#: and, in text mode, a ``TextIOWrapper`` over that (line buffering for ``bufsize=1``): all.
#: ``(bufsize, text) -> (stdin's layers, stdout's layers)``, from the outside in, as type
#: names (stderr's are stdout's).
PIPE_LAYERS: Dict[Tuple[int, bool], Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    (0, False): (("FileIO",), ("FileIO",)),
    (-1, False): (("BufferedWriter", "FileIO"), ("BufferedReader", "FileIO")),
    (0, True): (("TextIOWrapper", "FileIO"), ("TextIOWrapper", "FileIO")),
    (-1, True): (("TextIOWrapper", "BufferedWriter", "FileIO"),
                 ("TextIOWrapper", "BufferedReader", "FileIO")),
    (1, True): (("TextIOWrapper", "BufferedWriter", "FileIO"),
                ("TextIOWrapper", "BufferedReader", "FileIO")),
}
