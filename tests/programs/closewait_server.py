"""A TCP server that accepts connections and never closes them, so each ends in CLOSE_WAIT once
its peer closes. Prints its free loopback port on the first line; runs until killed.
Used by tests/sockets.rs."""
import socket

server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.bind(("127.0.0.1", 0))
server.listen(128)
print(server.getsockname()[1], flush=True)
held = []
while True:
    conn, _ = server.accept()
    held.append(conn)
