# CPython's own Listener or Client, for client/tests/connection_listener.rs.
#   peer.py listen ADDRESS KEY   -> prints the address, accepts one client
#   peer.py connect ADDRESS KEY
# ADDRESS is host:port or a socket path. The peer sends b'hello from python',
# then reverses each message it receives until it gets b'bye'.
import sys
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Listener

role, address, key = sys.argv[1], sys.argv[2], sys.argv[3].encode()
if '/' not in address:
    host, port = address.rsplit(':', 1)
    address = (host, int(port))

def serve(c):
    with c:
        c.send_bytes(b'hello from python')
        while True:
            m = c.recv_bytes()
            if m == b'bye':
                break
            c.send_bytes(m[::-1])
    print('DONE', flush=True)

try:
    if role == 'listen':
        with Listener(address, authkey=key) as listener:
            a = listener.address
            print(a if isinstance(a, str) else '%s:%d' % a, flush=True)
            serve(listener.accept())
    else:
        serve(Client(address, authkey=key))
except (AuthenticationError, EOFError) as e:
    print('AUTH-FAILED', type(e).__name__, flush=True)
