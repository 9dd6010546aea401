# CPython's own Client: sends 0 B, 10 B and 1 MiB, expects each reversed.
import sys
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client

try:
    c = Client(('127.0.0.1', int(sys.argv[1])), authkey=sys.argv[2].encode())
except AuthenticationError as e:
    print('AUTH-FAILED', type(e).__name__, e, flush=True)
    sys.exit(0)
with c:
    for n in (0, 10, 1 << 20):
        message = (bytes(range(251)) * (n // 251 + 1))[:n]
        c.send_bytes(message)
        assert c.recv_bytes() == message[::-1], n
print('DONE', flush=True)
