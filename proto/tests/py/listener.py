# CPython's own Listener; prints its port, then reverses each of three
# messages back and sends 1 MiB of its own. Mode "modern" runs the 3.12+
# handshake by hand (3.11 only speaks the legacy one).
import hmac, os, sys
from multiprocessing import AuthenticationError
from multiprocessing.connection import Listener

mode, key = sys.argv[1], sys.argv[2].encode()

def modern_deliver(c):
    payload = b'{sha256}' + os.urandom(40)
    c.send_bytes(b'#CHALLENGE#' + payload)
    response = c.recv_bytes(256)
    expected = b'{sha256}' + hmac.new(key, payload, 'sha256').digest()
    if not hmac.compare_digest(response, expected):
        c.send_bytes(b'#FAILURE#')
        raise AuthenticationError('digest received was wrong')
    c.send_bytes(b'#WELCOME#')

def modern_answer(c):
    message = c.recv_bytes(256)
    assert message.startswith(b'#CHALLENGE#{sha256}'), message
    payload = message[len(b'#CHALLENGE#'):]
    c.send_bytes(b'{sha256}' + hmac.new(key, payload, 'sha256').digest())
    if c.recv_bytes(256) != b'#WELCOME#':
        raise AuthenticationError('digest sent was rejected')

with Listener(('127.0.0.1', 0), authkey=None if mode == 'modern' else key) as listener:
    print(listener.address[1], flush=True)
    try:
        c = listener.accept()
        if mode == 'modern':
            modern_deliver(c)
            modern_answer(c)
    except (AuthenticationError, EOFError) as e:
        print('AUTH-FAILED', type(e).__name__, e, flush=True)
        sys.exit(0)
    with c:
        for _ in range(3):
            c.send_bytes(c.recv_bytes()[::-1])
        c.send_bytes(bytes(range(256)) * 4096)
        print('DONE', flush=True)
