"""TCP throughput between two hosts of the namespace cluster (tests/cluster/test_shape.sh).

  throughput.py recv ADDR PORT         accept one connection on ADDR:PORT, read until EOF
  throughput.py send ADDR PORT MIB     send MIB MiB to ADDR:PORT; prints Mbit/s (payload)
"""
import socket
import sys
import time

mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "recv":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1)
    c, _ = s.accept()
    while c.recv(1 << 20):
        pass
    c.close()  # the sender's recv() returns: everything arrived
else:
    mib = int(sys.argv[4])
    c = socket.create_connection((addr, port), timeout=60)
    buf = b"x" * (1 << 20)
    t = time.time()
    for _ in range(mib):
        c.sendall(buf)
    c.shutdown(socket.SHUT_WR)
    c.recv(1)
    print(f"{mib * 8 * 1.048576 / (time.time() - t):.1f}")
