"""What crosses the trust boundary, and how the grader reads it without being hurt by it.

A frame is an 8-byte length and a payload. Replies from a submission process are read under
one deadline per call (a reply trickled a byte at a time runs out of time like any other), and
decoded by `decode_reply`, which bounds every cost before paying it:

1. the payload is a ``torch.save`` zip archive whose members are all stored uncompressed (no
   zip bomb) and whose pickle is at most `MAX_PICKLE` bytes of at most `MAX_OPCODES` opcodes;
2. it is unpickled with ``torch.load(weights_only=True)``, which builds only data;
3. the result is walked once: at most `MAX_NODES` containers and scalars, no container reached
   twice (``[x, x]`` nested 40 deep is 1.4 KB but 2**40 paths), dense tensors only, none holding
   more elements than its storage (a stride-0 view of one float can claim a terabyte).

Anything else is the submission's fault and fails that one call.
"""

from __future__ import annotations

import io
import pickletools
import socket
import struct
import time
import zipfile

import torch

HEADER = struct.Struct("!Q")
MAX_FRAME = 256 << 20  # bytes in one reply
MAX_PICKLE = 16 << 20  # bytes of the pickle inside it (tensor data is stored beside it)
MAX_OPCODES = 4_000_000
MAX_NODES = 1_000_000
MAX_DEPTH = 64


class ReplyError(ValueError):
    """A reply that is not acceptable data; the message says why, in the student's terms."""


def send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(HEADER.pack(len(payload)) + payload)


def recv_exact(sock: socket.socket, n: int, deadline: float | None = None) -> bytes:
    """``n`` bytes, all of them before ``deadline`` (time.monotonic), or TimeoutError."""
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the reply did not arrive in time")
            sock.settimeout(remaining)
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("peer closed the connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket, deadline: float | None = None, limit: int = MAX_FRAME) -> bytes:
    (n,) = HEADER.unpack(recv_exact(sock, HEADER.size, deadline))
    if n > limit:
        raise ReplyError(f"a reply of {n:,} bytes is larger than the {limit:,}-byte limit")
    return recv_exact(sock, n, deadline)


def dump_data(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _check_archive(payload: bytes, deadline: float | None) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise ReplyError(f"the reply is not a torch.save archive ({exc})") from None
    if len(members) > 100_000 or sum(m.file_size for m in members) > len(payload):
        raise ReplyError("the reply's archive declares more content than it holds")
    pickles = [m for m in members if m.filename.endswith(".pkl")]
    for member in members:
        if member.compress_type != zipfile.ZIP_STORED:
            raise ReplyError("the reply's archive holds compressed members")
    if len(pickles) != 1 or pickles[0].file_size > MAX_PICKLE:
        raise ReplyError(f"the reply's pickle is missing, repeated or over {MAX_PICKLE:,} bytes")
    data = archive.read(pickles[0])
    try:
        for count, _ in enumerate(pickletools.genops(data)):
            if count > MAX_OPCODES:
                raise ReplyError(f"the reply has more than {MAX_OPCODES:,} pickle operations")
            if count % 65536 == 0 and deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("decoding the reply ran out of time")
    except ValueError as exc:
        if isinstance(exc, ReplyError):
            raise
        raise ReplyError(f"the reply's pickle is malformed ({exc})") from None


def check_data(value, deadline: float | None = None) -> None:
    """Bounds on a decoded reply (see the module docstring); raises `ReplyError`."""
    seen: set[int] = set()
    nodes = 0
    tensor_bytes = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise ReplyError(f"the reply has more than {MAX_NODES:,} values")
        if depth > MAX_DEPTH:
            raise ReplyError(f"the reply is nested more than {MAX_DEPTH} levels deep")
        if nodes % 65536 == 0 and deadline is not None and time.monotonic() > deadline:
            raise TimeoutError("checking the reply ran out of time")
        if isinstance(item, (list, tuple, dict, set, frozenset)):
            if item and id(item) in seen:  # empty ones may be interpreter singletons: harmless
                raise ReplyError("the reply holds the same container twice (shared containers are not data)")
            seen.add(id(item))
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else list(item)
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, torch.Tensor):
            if item.layout != torch.strided or item.is_quantized or item.is_nested:
                raise ReplyError(f"the reply holds a tensor with layout {item.layout}; dense tensors only")
            size = item.numel() * item.element_size()
            if size > item.untyped_storage().nbytes():
                raise ReplyError(
                    f"the reply holds a tensor of shape {tuple(item.shape)} viewing a smaller storage"
                )
            tensor_bytes += size
            if tensor_bytes > MAX_FRAME:
                raise ReplyError(f"the reply's tensors hold more than {MAX_FRAME:,} bytes")


def decode_reply(payload: bytes, deadline: float | None = None):
    """The data a submission process sent, within the bounds above; raises `ReplyError`."""
    _check_archive(payload, deadline)
    try:
        value = torch.load(io.BytesIO(payload), weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever torch refuses is not data
        raise ReplyError(f"the reply is not data ({type(exc).__name__}: {str(exc)[:200]})") from None
    check_data(value, deadline)
    return value
