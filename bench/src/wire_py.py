# CPython's side of `mp-bench wire`: the same workloads with
# multiprocessing.Pipe (a socketpair) and a forked Process.
#   wire_py.py pingpong unpinned|samecpu|crosscpu  -> round trips/s (median of 5)
#   wire_py.py bytes COUNT                          -> bytes/s one way (median of 5)
import os, sys, time
from multiprocessing import Pipe, Process

what, arg = sys.argv[1], sys.argv[2]
ALL = set(range(os.cpu_count()))

def pin(cpu):
    os.sched_setaffinity(0, ALL if cpu is None else {cpu})

def echo(c, cpu):
    pin(cpu)
    # The forked child holds a copy of the parent's end too, so end of
    # file never comes: the parent sends None to stop it.
    while (v := c.recv()) is not None:
        c.send(v)

def sink(c, n):
    for _ in range(n):
        c.recv_bytes()
    c.send_bytes(b'k')

def median(xs):
    return sorted(xs)[len(xs) // 2]

if what == 'pingpong':
    parent, child = {'unpinned': (None, None), 'samecpu': (0, 0), 'crosscpu': (0, 1)}[arg]
    a, b = Pipe()
    p = Process(target=echo, args=(b, child))
    p.start()
    b.close()
    pin(parent)
    for _ in range(500):
        a.send(12345)
        a.recv()
    rates = []
    for _ in range(5):
        n, start = 0, time.perf_counter()
        while True:
            for _ in range(64):
                a.send(12345)
                a.recv()
            n += 64
            elapsed = time.perf_counter() - start
            if elapsed >= 0.3:
                break
        rates.append(n / elapsed)
    a.send(None)
    p.join()
    print(median(rates))
else:
    n = int(arg)
    buf = b'x' * (1 << 20)
    rates = []
    for _ in range(5):
        a, b = Pipe()
        p = Process(target=sink, args=(b, n))
        p.start()
        b.close()
        start = time.perf_counter()
        for _ in range(n):
            a.send_bytes(buf)
        a.recv_bytes()
        rates.append(n * len(buf) / (time.perf_counter() - start))
        p.join()
    print(median(rates))
