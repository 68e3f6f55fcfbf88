"""Run a command with no network but loopback: `python3 .ci/offline.py CMD ARGS…` (root only).

CI runs the README's quick start through this after set-up, so a command that quietly needed a
download (a dataset, a model, a wheel) fails here instead of on a student's train. Loopback
stays up: the project's tests talk to servers they start on 127.0.0.1.
"""

import ctypes
import fcntl
import os
import socket
import struct
import sys

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def main() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise SystemExit(f"offline: cannot make a network namespace: {os.strerror(ctypes.get_errno())}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
