"""What the benchmark scripts share: unique component bytes and wrk's summary.

The scripts put this directory on PYTHONPATH for their embedded Python.
"""
import re


def leb(n):
    """`n` as unsigned LEB128."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def unique(component, nonce):
    """The component with a custom section naming `nonce`: new bytes (a new
    hash, a new digest), so nothing has compiled them before."""
    name = b"wasmhouse-bench-nonce"
    body = leb(len(name)) + name + nonce.encode()
    return component + b"\x00" + leb(len(body)) + body


def wrk_summary(text):
    """Requests per second, requests, and failed requests (non-2xx/3xx
    answers and socket errors) from wrk's output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    failed = (int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0)
    return float(rps.group(1)), int(total.group(1)), failed
