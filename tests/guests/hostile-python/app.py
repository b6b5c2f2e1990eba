"""A Python route component that misbehaves on purpose, for the limits
tests: the host must contain each of these like a Rust guest's."""

import sys

from wasmhouse import App, serve

app = App(title="hostile (Python)")


@app.get("/health", queries=False)
def health():
    return {"status": "healthy"}


@app.get("/spin", queries=False)
def spin():
    """Never returns: the route's time limit must stop it."""
    n = 0
    while True:
        n += 1


@app.get("/exit", queries=False)
def leave():
    """SystemExit is not an Exception: nothing catches it, the instance traps."""
    raise SystemExit(3)


@app.get("/recurse", queries=False)
def recurse():
    """Recursion without a Python limit: its frames fill the route's memory."""
    sys.setrecursionlimit(10_000_000)

    def deeper(n):
        return deeper(n + 1) + 1

    return deeper(0)


@app.get("/hog", queries=False)
def hog():
    """Asks for more memory than the route may have."""
    blocks = []
    while True:
        blocks.append(bytearray(8 << 20))


@app.get("/raise", queries=False)
def fail():
    raise ValueError("a bug in the route")


IncomingHandler = serve(app)
