"""Interop corpus for mp-pickle, run by tests/interop.rs as a coprocess.

Protocol on stdio (one line each):
  Python -> Rust:  CASE <name> <protocol> <kind> <hex>   a pickle to read
                   END                                   no more cases
  Rust -> Python:  BACK <name> <protocol> <written-protocol> <hex>
                   REFUSED <name> <protocol> <message>
Python then loads every BACK pickle, checks it equals the original value
(and, where CPython's own pickle of it uses no memo, that the bytes equal
pickletools.optimize(pickle.dumps(value, written-protocol))), checks that
exactly the refusals expected happened, prints a report and exits 1 on any
failure.
"""

import array
import collections
import dataclasses
import datetime
import decimal
import enum
import fractions
import functools
import multiprocessing
import os
import pickle
import pickletools
import queue
import struct
import sys
import threading
import types
import uuid
from multiprocessing import managers
from multiprocessing.managers import BaseProxy, RemoteError, SyncManager, Token


@dataclasses.dataclass
class Point:
    x: int
    y: str


@dataclasses.dataclass(frozen=True)
class Frozen:
    a: int
    b: tuple


class Slots:
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a, self.b = a, b

    def __getstate__(self):
        return (self.a, self.b)

    def __setstate__(self, state):
        self.a, self.b = state


class MyList(list):
    pass


class MyDict(dict):
    pass


class WithNewArgs:
    def __new__(cls, n):
        self = super().__new__(cls)
        self.n = n
        return self

    def __getnewargs__(self):
        return (self.n,)


class WithNewArgsEx:
    def __new__(cls, n, *, k):
        self = super().__new__(cls)
        self.n, self.k = n, k
        return self

    def __getnewargs_ex__(self):
        return ((self.n,), {"k": self.k})


Pair = collections.namedtuple("Pair", "left right")


class Color(enum.Enum):
    RED = 1


class MyError(Exception):
    pass


class Evil:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def canon(x):
    """A comparable form of x: types exact, floats by bits, proxies by token."""
    t = type(x)
    tname = t.__module__ + "." + t.__qualname__
    if isinstance(x, BaseProxy):
        return ("proxy", t.__name__, canon(x._token), x._serializer)
    if isinstance(x, Token):
        return ("token", x.typeid, canon(x.address), x.id)
    if isinstance(x, BaseException):
        return ("exc", tname, canon(x.args), canon(getattr(x, "__dict__", {})))
    if t is float:
        return ("float", struct.pack(">d", x))
    if t is complex:
        return ("complex", struct.pack(">dd", x.real, x.imag))
    if t in (list, tuple, MyList) or isinstance(x, tuple) and hasattr(x, "_fields"):
        return (tname, [canon(i) for i in x], canon(getattr(x, "__dict__", None)))
    if t in (dict, MyDict, collections.OrderedDict, collections.defaultdict):
        return (tname, [(canon(k), canon(v)) for k, v in x.items()],
                canon(getattr(x, "default_factory", None)))
    if t in (set, frozenset):
        return (tname, sorted(repr(canon(i)) for i in x))
    if t is collections.deque:
        return (tname, [canon(i) for i in x], x.maxlen)
    if t is Slots:
        return (tname, canon(x.a), canon(x.b))
    if t in (Point, Frozen, WithNewArgs, WithNewArgsEx, managers.Namespace, managers.Value):
        return (tname, canon(vars(x)))
    if t is types.SimpleNamespace:
        return (tname, canon(vars(x)))
    return (tname, x)


def kind_of(x):
    if isinstance(x, BaseProxy):
        return "Proxy"
    if isinstance(x, Token):
        return "Token"
    if isinstance(x, type) or x is Ellipsis:
        return "Global"
    if isinstance(x, BaseException):
        return "Exception"
    t = type(x)
    simple = {type(None): "None", bool: "Bool", float: "Float", complex: "Complex",
              str: "Str", bytes: "Bytes", bytearray: "ByteArray", tuple: "Tuple",
              list: "List", dict: "Dict", set: "Set", frozenset: "FrozenSet",
              slice: "Slice", range: "Range"}
    if t is int:
        return "Int" if -2**63 <= x < 2**63 else "BigInt"
    return simple.get(t, "Instance")


def corpus(mgr, tcp):
    d = mgr.dict({"a": 1})
    lst = mgr.list([1, 2])
    q = mgr.Queue()
    jq = mgr.JoinableQueue()
    proxies = {
        "proxy_dict": d,
        "proxy_list": lst,
        "proxy_queue": q,
        "proxy_joinable_queue": jq,
        "proxy_event": mgr.Event(),
        "proxy_lock": mgr.Lock(),
        "proxy_rlock": mgr.RLock(),
        "proxy_semaphore": mgr.Semaphore(2),
        "proxy_condition": mgr.Condition(),
        "proxy_barrier": mgr.Barrier(2),
        "proxy_namespace": mgr.Namespace(),
        "proxy_value": mgr.Value("i", 3),
        "proxy_array": mgr.Array("i", [1, 2]),
        "proxy_tcp_dict": tcp.dict(),
    }
    shared = [1, "two"]
    note = KeyError("k")
    note.add_note("a note")
    token = Token("dict", "/tmp/mp-x/listener", "7f00aa")
    tcp_token = Token("Queue", ("127.0.0.1", 50000), "ab12")
    cases = dict(proxies)
    cases.update({
        "none": None, "true": True, "false": False,
        "int_small": 5, "int_neg": -70000, "int_i32": 2**31 - 1, "int_i64_max": 2**63 - 1,
        "int_i64_min": -2**63, "big": 2**100, "big_neg": -2**200, "big_edge": 2**1022,
        "float": 1.5, "float_nan": float("nan"), "float_negzero": -0.0, "float_inf": float("inf"),
        "complex": complex(1.5, -2.0),
        "str_empty": "", "str_unicode": "h\u00e9llo \u2603 \U0001f600", "str_long": "x" * 70000,
        "str_newline": "a\nb\\u0041\r\x00",
        "bytes_empty": b"", "bytes": bytes(range(256)), "bytes_long": b"\x01" * 100000,
        "bytearray": bytearray(b"ab\x00"), "bytearray_empty": bytearray(),
        "tuple_empty": (), "tuple1": (1,), "tuple3": (1, 2, 3), "tuple5": (1, 2, 3, 4, 5),
        "list_nested": [1, [2, [3, []]]], "list_2500": list(range(2500)),
        "dict_mixed": {"a": 1, 2: "b", (1, 2): None, frozenset({1}): 1.0, None: [], True: b""},
        "dict_2500": {i: str(i) for i in range(2500)},
        "set": {1, 2, 3}, "set_empty": set(), "set_2500": set(range(2500)),
        "frozenset": frozenset({"a", (1, 2)}), "frozenset_empty": frozenset(),
        "slice": slice(1, None, 2), "slice_stop": slice(5), "range": range(0, 10, 3),
        "range_big": range(2**70), "type_int": int, "type_list": list, "ellipsis": Ellipsis,
        "type_keyerror": KeyError,
        "shared": [shared, shared, (shared,)],
        "nested": {"a": [(1, {"b": {1, 2}}), bytearray(b"x")], "c": (slice(1, 2), range(3))},
        "token": token, "token_tcp": tcp_token,
        "proxies_nested": {"d": d, "l": [q, lst], "t": (d,)},
        "request_create": (None, "create", ("dict",), {}),
        "request_setitem_proxy": ("7f00", "__setitem__", ("k", d), {}),
        "request_getitem_slice": ("7f00", "__getitem__", (slice(1, 3),), {}),
        "request_get_methods": (None, "get_methods", (token,), {}),
        "reply_return": ("#RETURN", None),
        "reply_error": ("#ERROR", KeyError("k")),
        "reply_proxy": ("#PROXY", (("get", "put"), tcp_token)),
        "reply_traceback": ("#TRACEBACK", "Traceback (most recent call last):\n"),
        "exc_key": KeyError("k"), "exc_index": IndexError("i"), "exc_value": ValueError(),
        "exc_type": TypeError("t", 1), "exc_runtime": RuntimeError("r"),
        "exc_attribute": AttributeError("a"), "exc_overflow": OverflowError(),
        "exc_memory": MemoryError(), "exc_zero": ZeroDivisionError("division by zero"),
        "exc_stop": StopIteration(5), "exc_timeout": TimeoutError(),
        "exc_oserror": OSError(2, "No such file", "f"),
        "exc_queue_empty": queue.Empty(), "exc_queue_full": queue.Full(),
        "exc_broken_barrier": threading.BrokenBarrierError(),
        "exc_remote": RemoteError("remote traceback"), "exc_note": note,
        "exc_group": ExceptionGroup("g", [ValueError(1), KeyError(2)]),
        "exc_mp_timeout": multiprocessing.TimeoutError("x"),
        "exc_import": ImportError("m", name="mod", path="/p"),
        "dataclass": Point(1, "a"), "dataclass_frozen": Frozen(1, (2, 3)),
        "slots": Slots(1, [2]), "list_subclass": MyList([1, 2]), "dict_subclass": MyDict(a=1),
        "newargs": WithNewArgs(7), "newargs_ex": WithNewArgsEx(1, k="v"),
        "namedtuple": Pair(1, "r"),
        "dataclass_in_dict": {"p": Point(2, "b"), "l": [Point(3, "c")]},
        "ordered_dict": collections.OrderedDict([("b", 1), ("a", 2)]),
        "counter": collections.Counter("aab"), "deque": collections.deque([1, 2], 5),
        "defaultdict": collections.defaultdict(list, {"a": [1]}),
        "datetime": datetime.datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc),
        "date": datetime.date(2021, 5, 6), "time": datetime.time(1, 2, 3),
        "timedelta": datetime.timedelta(days=1, seconds=5),
        "decimal": decimal.Decimal("1.50"), "fraction": fractions.Fraction(1, 3),
        "uuid": uuid.UUID(int=5), "array": array.array("i", [1, -2]),
        "mgr_namespace": managers.Namespace(a=1), "mgr_value": managers.Value("i", 3),
    })
    kinds = {name: kind_of(v) for name, v in cases.items()}
    refused = {
        "enum_member": Color.RED,
        "custom_exception": MyError("x"),
        "partial": functools.partial(print, 1),
        "os_system": Evil(os.system, ("true",)),
        "posix_system": Evil(getattr(os, "system"), ("echo hi",)),
        "subprocess": Evil(__import__("subprocess").Popen, (["true"],)),
        "eval": Evil(eval, ("1+1",)),
        "exec": Evil(exec, ("x=1",)),
        "getattr": Evil(getattr, ("x", "upper")),
        "simple_namespace": types.SimpleNamespace(a=1),
        "user_class_itself": Point,
        "user_function_call": Evil(canon, (1,)),
        "recursive": (lambda l: (l.append(l), l)[1])([]),
    }
    # protocols 2 and 3 pickle __getnewargs_ex__ objects with functools.partial
    refused_at = {"newargs_ex": {2, 3}}
    return cases, kinds, refused, refused_at


def main():
    mgr = SyncManager()
    mgr.start()
    tcp = SyncManager(address=("127.0.0.1", 0))
    tcp.start()
    failures = []
    try:
        cases, kinds, refused, refused_at = corpus(mgr, tcp)
        originals = {}
        # CPython's own pickles, taken before canon() touches the values
        # (reading an exception's __dict__ creates it, which changes its pickle)
        cpython = {}
        for name, value in list(cases.items()) + list(refused.items()):
            for proto in range(0, pickle.HIGHEST_PROTOCOL + 1):
                try:
                    cpython[(name, proto)] = pickle.dumps(value, proto)
                except Exception:
                    pass  # not picklable in this protocol (slots in 0/1)
        expect_refused = set()
        out = sys.stdout
        for name, value in list(cases.items()) + list(refused.items()):
            for proto in range(0, pickle.HIGHEST_PROTOCOL + 1):
                data = cpython.get((name, proto))
                if data is None:
                    continue
                kind = kinds.get(name, "refused")
                if name in refused or proto in refused_at.get(name, ()):
                    kind = "refused"
                    expect_refused.add((name, proto))
                originals[(name, proto)] = value
                out.write("CASE %s %d %s %s\n" % (name, proto, kind, data.hex()))
        out.write("END\n")
        out.flush()

        got_refused = set()
        checked = exact = 0
        for line in sys.stdin:
            parts = line.split(" ", 4)
            if parts[0] == "REFUSED":
                got_refused.add((parts[1], int(parts[2])))
                continue
            if parts[0] != "BACK":
                failures.append("unexpected line from Rust: %r" % line[:200])
                continue
            name, proto, wproto, data = parts[1], int(parts[2]), int(parts[3]), bytes.fromhex(parts[4].strip())
            original = originals[(name, proto)]
            # What CPython's own round trip gives (protocols 0-2 turn a
            # TimeoutError into an OSError, say): Rust's must give the same.
            expected = pickle.loads(cpython[(name, proto)])
            try:
                loaded = pickle.loads(data)
            except Exception as e:
                failures.append("%s p%d->p%d: Python cannot load Rust's pickle: %r" % (name, proto, wproto, e))
                continue
            if canon(loaded) != canon(expected):
                failures.append("%s p%d->p%d: %r != %r" % (name, proto, wproto, canon(loaded), canon(expected)))
                continue
            checked += 1
            # Byte identity where CPython's pickle shares nothing by memo and
            # fits one frame (CPython names builtins __builtin__ in protocol 2).
            if wproto >= 3:
                want = pickletools.optimize(cpython[(name, wproto)])
                uses_memo = any(op.name in ("GET", "BINGET", "LONG_BINGET")
                                for op, _, _ in pickletools.genops(want))
                if not uses_memo and len(want) < 60000 and not isinstance(original, BaseProxy):
                    exact += 1
                    if want != data:
                        failures.append("%s p%d->p%d: bytes differ from CPython's:\n  rust   %s\n  python %s"
                                        % (name, proto, wproto, data.hex(), want.hex()))
        for missing in sorted(expect_refused - got_refused):
            failures.append("%s p%d: expected a refusal, Rust accepted it" % missing)
        for extra in sorted(got_refused - expect_refused):
            failures.append("%s p%d: Rust refused it" % extra)
        print("python %s: %d round trips equal, %d byte-identical to CPython, %d refusals as expected"
              % (sys.version.split()[0], checked, exact, len(expect_refused & got_refused)))
    finally:
        tcp.shutdown()
        mgr.shutdown()
    for f in failures:
        print("FAIL " + f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
