"""A dashboard client that stops reading: connects to a weir dashboard over WebSocket with a tiny
receive buffer, joins the default namespace, prints "connected" and then never reads again, holding
the connection until its stdin closes. Usage: slow_client.py HOST PORT."""

import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
conn = socket.socket()
conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
conn.connect((host, port))
conn.sendall(
    f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}:{port}\r\n"
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: c2xvdy1jbGllbnQta2V5IQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n".encode()
)
answer = conn.recv(1024)
if not answer.startswith(b"HTTP/1.1 101"):
    sys.exit(f"upgrade refused: {answer[:200]!r}")
mask, connect = b"\x11\x22\x33\x44", b"40"  # Socket.IO CONNECT to "/", masked as clients must
conn.sendall(bytes([0x81, 0x80 | len(connect)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(connect)))
print("connected", flush=True)
sys.stdin.read()
