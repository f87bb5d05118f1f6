"""Fixtures for the Python suite of the generated bindings.

The suite loads `bindings_ffi.py` (and the cdylib beside it) from
`bindings_ffi/out/python`, or from `$XMTP_FFI_PYTHON`; `dev/gen-bindings python`
writes them there. Each test session starts the real `xmtp-node` binary
(`$XMTP_NODE_BIN`, default `target/debug/xmtp-node`) on free ports with an
in-memory store, reads the address it prints, and stops it at the end.
"""

import asyncio
import os
import queue
import subprocess
import sys
import threading

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.environ.get("XMTP_FFI_PYTHON", os.path.join(ROOT, "bindings_ffi", "out", "python")))

try:
    import bindings_ffi  # noqa: E402  (the generated module)
except ImportError as e:  # pragma: no cover - a setup error, not a test failure
    raise SystemExit(f"cannot load the generated bindings ({e}); run `dev/gen-bindings python` first")

# Waits on the node and on streamed messages are bounds against a hang, not
# assertions about speed.
WAIT_SECONDS = 60


def _target_dir():
    return os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


@pytest.fixture(scope="session")
def node_url(tmp_path_factory):
    """The gRPC URL of a fresh xmtp-node started for this test session."""
    binary = os.environ.get("XMTP_NODE_BIN", os.path.join(_target_dir(), "debug", "xmtp-node"))
    if not os.path.exists(binary):
        pytest.fail(f"no xmtp-node binary at {binary}; run `cargo build -p xmtp_node`")
    log = open(tmp_path_factory.mktemp("node") / "xmtp-node.log", "w")
    process = subprocess.Popen(
        [binary, "--grpc-port", "0", "--http-port", "0", "--db", ":memory:"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    lines = queue.Queue()

    def read_stdout():
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read_stdout, daemon=True).start()
    try:
        grpc = None
        while grpc is None:
            line = lines.get(timeout=WAIT_SECONDS)
            if line is None:
                pytest.fail(f"xmtp-node exited before listening; see {log.name}")
            if line.startswith("xmtp-node listening:"):
                fields = dict(part.split("=", 1) for part in line.split()[2:])
                grpc = fields["grpc"]
        yield f"http://{grpc}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def run(coroutine):
    """Runs a test's coroutine on a new event loop that is also the loop the
    bindings use for Python async callbacks (the wallet signer)."""

    async def main():
        bindings_ffi.uniffi_set_event_loop(asyncio.get_running_loop())
        return await coroutine

    return asyncio.run(main())


class Collector(bindings_ffi.FfiMessageCallback):
    """A stream callback that queues what it receives (it is called on one of
    the library's threads, so it hands messages over through a queue)."""

    def __init__(self):
        self.messages = queue.Queue()
        self.errors = queue.Queue()

    def on_message(self, message):
        self.messages.put(message)

    def on_error(self, error):
        self.errors.put(error)

    async def next_message(self):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: self.messages.get(timeout=WAIT_SECONDS))

    async def next_text(self, text):
        """The next message with this text (skipping others)."""
        while True:
            message = await self.next_message()
            if message.text == text:
                return message

    def drain_texts(self):
        texts = []
        while True:
            try:
                texts.append(self.messages.get_nowait().text)
            except queue.Empty:
                return texts
