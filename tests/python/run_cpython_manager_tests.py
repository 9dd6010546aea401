"""CPython's own manager tests, run against an external `mpserver`.

`test._test_multiprocessing` generates a `WithManagerTest*` class for every
test class that allows the 'manager' type (queues, locks, semaphores,
conditions, events, barriers, containers with nested proxies, namespace,
...) and has `TestSyncManagerTypes` (each SyncManager type used from a
child process). Both normally start CPython's own manager server. Here
their manager is a `SyncManager` connected to an `mpserver` that is
already running:

    MPSERVER_ADDRESS       host:port, or the path of a Unix socket
    MPSERVER_AUTHKEY_FILE  the file holding the server's key
    MPSERVER_START_METHOD  fork (default), spawn or forkserver
    MPSERVER_TEST_LIMIT    seconds before every thread's stack is dumped
                           and the run exits 3 (default 600)

Run as `python3 run_cpython_manager_tests.py [-v] [NAME-SUBSTRING ...]`.
The last line of standard output is the summary, one JSON object:
{"python", "start_method", "ran", "passed", "failed": [names],
"errors": [names], "skipped": [{"name", "reason"}], "out_of_scope":
[{"name", "reason"}]}; the exit status is 0 exactly when nothing in scope
failed.

Tearing a class down is a real check here: every object the class's
tests made must be released on the server (`_number_of_objects()` back to
where it was before the class) within a few seconds, or the class's
teardown is an error.
"""

import gc
import json
import os
import sys
import time
import unittest

import multiprocessing
from multiprocessing.managers import SyncManager

import test._test_multiprocessing as tm

# What cannot pass against a server that never runs the client's Python
# code, by design, or what tests CPython's own server rather than the
# manager under test. Keys are a class name (every test in it) or
# "Class.test_method".
OUT_OF_SCOPE = {
    "WithManagerTestPool": (
        "manager.Pool() runs the client's functions in the server process; "
        "mpserver never runs client code"
    ),
    "WithManagerTestMyManager": (
        "registers Python classes and a generator (Foo, Bar, baz) that the "
        "server would have to run; it also starts its own CPython server "
        "rather than using the manager under test"
    ),
    "WithManagerTestRemoteManager": (
        "registers a Python callable (get_queue returning a queue.Queue) "
        "that the server would have to run, speaks the xmlrpclib "
        "serializer, and starts its own CPython server rather than using "
        "the manager under test"
    ),
    "WithManagerTestManagerRestart": (
        "restarts CPython's own server (get_server(), start() twice on one "
        "address) with a registered Python callable; it never uses the "
        "manager under test"
    ),
    "WithManagerTestBarrier.test_action": (
        "Barrier(action=...) pickles a Python callable for the server to "
        "call; mpserver refuses it (it never runs client code)"
    ),
    "TestSyncManagerTypes.test_pool": (
        "manager.Pool() runs the client's functions in the server process; "
        "mpserver never runs client code"
    ),
}

# How long a class's objects may take to be released after its last test
# (child processes drop their references as they exit).
RELEASE_LIMIT = 10.0


def _address():
    text = os.environ.get("MPSERVER_ADDRESS")
    if not text:
        sys.exit("MPSERVER_ADDRESS is not set (host:port or a socket path)")
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit():
        return (host, int(port))
    return text


def _authkey():
    path = os.environ.get("MPSERVER_AUTHKEY_FILE")
    if not path:
        sys.exit("MPSERVER_AUTHKEY_FILE is not set")
    with open(path, "rb") as f:
        return f.read()


ADDRESS = _address()
AUTHKEY = _authkey()
START_METHOD = os.environ.get("MPSERVER_START_METHOD", "fork")

# Proxies that arrive inside replies (nested proxies) and those a child
# process rebuilds authenticate with the process's key, as in CPython's
# tests where the manager shares the parent's key.
multiprocessing.current_process().authkey = AUTHKEY


class ExternalManager(SyncManager):
    """A SyncManager whose `start()` connects to the running mpserver
    instead of spawning a server, and whose `shutdown()` leaves that
    server running."""

    def __init__(self, *args, **kwargs):
        super().__init__(address=ADDRESS, authkey=AUTHKEY)

    def start(self, initializer=None, initargs=()):
        self.connect()

    def shutdown(self):
        pass

    def join(self, timeout=None):
        pass


def _objects():
    probe = ExternalManager()
    probe.connect()
    return probe._number_of_objects(), probe


def _manager_setup(cls):
    tm.BaseMixin.setUpClass.__func__(cls)
    cls.objects_before, _ = _objects()
    cls.manager = ExternalManager()
    cls.manager.start()


def _manager_teardown(cls):
    # What CPython's ManagerMixin.tearDownClass does with its own server,
    # made a real check: the objects this class made are all released.
    deadline = time.monotonic() + RELEASE_LIMIT
    while True:
        gc.collect()
        count = cls.manager._number_of_objects()
        if count <= cls.objects_before or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    info = cls.manager._debug_info() if count > cls.objects_before else ""
    cls.manager.shutdown()
    cls.manager.join()
    cls.manager = None
    tm.BaseMixin.tearDownClass.__func__(cls)
    if count > cls.objects_before:
        raise AssertionError(
            f"{count - cls.objects_before} objects still held on the server "
            f"{RELEASE_LIMIT} s after the class's last test:\n{info}"
        )


tm.ManagerMixin.setUpClass = classmethod(_manager_setup)
tm.ManagerMixin.tearDownClass = classmethod(_manager_teardown)
tm.TestSyncManagerTypes.manager_class = ExternalManager

# The generated classes live in this module, so a spawned child finds
# them (and re-runs the lines above) by importing it as __mp_main__.
tm.install_tests_in_module_dict(globals(), START_METHOD, only_type="manager")
TestSyncManagerTypes = tm.TestSyncManagerTypes


def _out_of_scope(test):
    cls = type(test).__name__
    name = f"{cls}.{test._testMethodName}"
    return OUT_OF_SCOPE.get(name) or OUT_OF_SCOPE.get(cls)


def _suite(filters):
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    excluded = []
    classes = [
        v
        for k, v in sorted(globals().items())
        if isinstance(v, type)
        and issubclass(v, unittest.TestCase)
        and (k.startswith("WithManager") or v is TestSyncManagerTypes)
    ]
    for cls in classes:
        for test in loader.loadTestsFromTestCase(cls):
            name = f"{cls.__name__}.{test._testMethodName}"
            if filters and not any(f in name for f in filters):
                continue
            reason = _out_of_scope(test)
            if reason:
                excluded.append({"name": name, "reason": reason})
            else:
                suite.addTest(test)
    return suite, excluded


def _name(test):
    if isinstance(test, unittest.TestCase):
        return f"{type(test).__name__}.{test._testMethodName}"
    # A class or module fixture that failed (`_ErrorHolder`).
    return str(test)


def main(argv):
    verbose = "-v" in argv
    filters = [a for a in argv if not a.startswith("-")]
    limit = float(os.environ.get("MPSERVER_TEST_LIMIT", "600"))
    import faulthandler

    faulthandler.dump_traceback_later(limit, exit=True)
    suite, excluded = _suite(filters)
    runner = unittest.TextTestRunner(
        stream=sys.stderr, verbosity=2 if verbose else 1
    )
    result = runner.run(suite)
    faulthandler.cancel_dump_traceback_later()
    failed = sorted(_name(t) for t, _ in result.failures)
    failed += sorted(_name(t) for t, _ in result.unexpectedSuccesses)
    errors = sorted(_name(t) for t, _ in result.errors)
    skipped = [{"name": _name(t), "reason": r} for t, r in result.skipped]
    # Tests that did not pass (a failed class fixture is not a test).
    bad = result.failures + result.errors + result.skipped
    bad = {_name(t) for t, _ in bad if isinstance(t, unittest.TestCase)}
    bad |= {_name(t) for t in result.unexpectedSuccesses}
    passed = result.testsRun - len(bad)
    summary = {
        "python": sys.version.split()[0],
        "start_method": START_METHOD,
        "ran": result.testsRun,
        "passed": passed,
        "failed": failed,
        "errors": errors,
        "skipped": skipped,
        "out_of_scope": excluded,
    }
    sys.stdout.write(json.dumps(summary) + "\n")
    sys.stdout.flush()
    return 0 if not failed and not errors else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
