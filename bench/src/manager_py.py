# CPython's SyncManager doing the same work as `mp-bench manager`.
# Usage: python3 -c SCRIPT single PLACEMENT REPEAT_SECS REPEATS
#        python3 -c SCRIPT clients N_CLIENTS N_PAIRS
#        python3 -c SCRIPT create N_PROXIES
# Prints "name value" lines.
import os, sys, time
from multiprocessing.managers import SyncManager
import multiprocessing as mp

def pin(cpu):
    if cpu is None:
        os.sched_setaffinity(0, range(os.cpu_count()))
    else:
        os.sched_setaffinity(0, {cpu})

def rate(step, secs):
    for _ in range(200):
        step()
    n = 0
    start = time.perf_counter()
    while True:
        for _ in range(32):
            step()
        n += 32
        el = time.perf_counter() - start
        if el >= secs:
            return n / el

def single(placement, secs, repeats):
    server_cpu, client_cpu = {"unpinned": (None, None), "samecpu": (0, 0), "crosscpu": (1, 0)}[placement]
    pin(server_cpu)
    m = SyncManager(address=("127.0.0.1", 0), authkey=b"bench")
    m.start()
    pin(client_cpu)
    d = m.dict(); l = m.list(); q = m.Queue(); lk = m.Lock()
    def dict_set(): d["k"] = 1
    def dict_get(): d["k"]
    def list_append():
        l.append(1)
    def queue_put_get():
        q.put(1); q.get()
    def lock_acquire_release():
        lk.acquire(); lk.release()
    work = [("dict_set", dict_set), ("dict_get", dict_get), ("list_append", list_append),
            ("queue_put_get", queue_put_get), ("lock_acquire_release", lock_acquire_release)]
    results = {name: [] for name, _ in work}
    d["k"] = 0
    for _ in range(repeats):
        for name, step in work:
            results[name].append(rate(step, secs))
        # Keep the list from growing without bound between repeats.
        del l[:]
    for name, vals in results.items():
        vals.sort()
        print(name, vals[len(vals) // 2])
    m.shutdown()

def client(d, key, pairs, barrier, out):
    barrier.wait()
    start = time.perf_counter()
    for i in range(pairs):
        d[key] = i
        d[key]
    out.put(time.perf_counter() - start)

def clients(n, pairs):
    m = SyncManager(address=("127.0.0.1", 0), authkey=b"bench")
    m.start()
    d = m.dict()
    barrier = mp.Barrier(n)
    out = mp.Queue()
    procs = [mp.Process(target=client, args=(d, "k%d" % i, pairs, barrier, out)) for i in range(n)]
    for p in procs:
        p.start()
    times = [out.get() for _ in procs]
    for p in procs:
        p.join()
    print("dict_setget_clients", n * pairs * 2 / max(times))
    m.shutdown()

def create(n):
    m = SyncManager(address=("127.0.0.1", 0), authkey=b"bench")
    m.start()
    x = m.list(); del x  # warm-up
    start = time.perf_counter()
    for _ in range(n):
        x = m.list(); del x
    print("proxy_create_destroy", n / (time.perf_counter() - start))
    m.shutdown()

if __name__ == "__main__":
    if sys.argv[1] == "single":
        single(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "create":
        create(int(sys.argv[2]))
    else:
        clients(int(sys.argv[2]), int(sys.argv[3]))
