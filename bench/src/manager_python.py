# `mp-bench manager.python`: one unmodified CPython manager client, run
# against mpserver, against CPython's own SyncManager server, and against
# a server that answers every request at once with a fixed reply.
# Usage: python3 -c SCRIPT serve KEYHEX
#        python3 -c SCRIPT single HOST PORT KEYHEX SERVER_PID SECS [instant]
#        python3 -c SCRIPT clients HOST PORT KEYHEX N_PROCS N_PAIRS [instant]
#        python3 -c SCRIPT create HOST PORT KEYHEX SECS
# Prints "name value" lines ("serving at HOST:PORT" for serve).
import os, sys, time
import multiprocessing as mp
from multiprocessing.managers import SyncManager, DictProxy, Token, AutoProxy


def serve(key):
    # CPython's own server: one thread per connection.
    server = SyncManager(address=("127.0.0.1", 0), authkey=key).get_server()
    print("serving at %s:%d" % server.address, flush=True)
    server.serve_forever()


def cpu_ns(pid):
    # Nanoseconds on a CPU, summed over the process's threads.
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def rate(step, secs):
    # Pairs per second, after a warm-up.
    for _ in range(300):
        step()
    n = 0
    start = time.perf_counter()
    while True:
        for _ in range(32):
            step()
        n += 32
        elapsed = time.perf_counter() - start
        if elapsed >= secs:
            return n, elapsed


def make_dict(address, key, instant):
    if instant:
        # No manager to make objects: a proxy of a made-up token, every
        # call of which the instant server answers ('#RETURN', 1).
        return DictProxy(Token("dict", address, "1"), "pickle", authkey=key,
                         manager_owned=True)
    m = SyncManager(address=address, authkey=key)
    m.connect()
    return m.dict()


def single(address, key, server_pid, secs, instant):
    d = make_dict(address, key, instant)
    if instant:
        q = AutoProxy(Token("Queue", address, "2"), "pickle", authkey=key,
                      manager_owned=True, exposed=("put", "get"))
    else:
        q = d._manager.Queue()
    d["k"] = 0

    def dict_setget():
        d["k"] = 1
        d["k"]

    def queue_put_get():
        q.put(1)
        q.get()

    s0, c0 = cpu_ns(server_pid), time.process_time()
    n, elapsed = rate(dict_setget, secs)
    s1, c1 = cpu_ns(server_pid), time.process_time()
    calls = 2 * (n + 300)
    print("dict_setget", n / elapsed)
    print("server_ns_per_call", (s1 - s0) / calls)
    print("client_ns_per_call", (c1 - c0) * 1e9 / calls)
    n, elapsed = rate(queue_put_get, secs)
    print("queue_put_get", n / elapsed)


def worker(d, key, pairs, barrier, out):
    barrier.wait()
    start = time.perf_counter()
    for i in range(pairs):
        d[key] = i
        d[key]
    out.put(time.perf_counter() - start)


def clients(address, key, n, pairs, instant):
    d = make_dict(address, key, instant)
    barrier = mp.Barrier(n)
    out = mp.Queue()
    procs = [mp.Process(target=worker, args=(d, "k%d" % i, pairs, barrier, out))
             for i in range(n)]
    for p in procs:
        p.start()
    times = [out.get() for _ in procs]
    for p in procs:
        p.join()
    print("dict_setget_procs", n * pairs / max(times))


def create(address, key, secs):
    m = SyncManager(address=address, authkey=key)
    m.connect()
    x = m.dict(); del x  # warm-up
    n = 0
    start = time.perf_counter()
    # At least 3: CPython's own server takes ~0.2 s for each.
    while n < 3 or time.perf_counter() - start < secs:
        x = m.dict(); del x
        n += 1
    print("dict_create_del", n / (time.perf_counter() - start))


if __name__ == "__main__":
    mp.set_start_method("fork")
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "serve":
        serve(bytes.fromhex(args[0]))
        sys.exit(0)
    address, key = (args[0], int(args[1])), bytes.fromhex(args[2])
    if cmd == "single":
        single(address, key, int(args[3]), float(args[4]), args[5:] == ["instant"])
    elif cmd == "clients":
        clients(address, key, int(args[3]), int(args[4]), args[5:] == ["instant"])
    else:
        create(address, key, float(args[3]))
