"""The library's logs reach a logger written in Python."""

import threading

import pytest

from bindings_ffi import FfiError, FfiLogger, FfiLogLevel, clear_logger, create_client, set_logger
from conftest import run


class Recorder(FfiLogger):
    def __init__(self):
        self.lines = []
        self.lock = threading.Lock()

    def log(self, level, target, message):
        with self.lock:
            self.lines.append((level, target, message))


class Broken(FfiLogger):
    def log(self, level, target, message):
        raise RuntimeError("the app's logger failed")


def test_library_logs_reach_the_app_logger_until_cleared(node_url):
    recorder = Recorder()
    set_logger(recorder, "bindings_ffi=info,warn")
    try:

        async def scenario():
            client = await create_client(node_url, None, b"", None)
            return client.address()

        address = run(scenario())
        ready = [line for line in recorder.lines if line[2].startswith("client ready")]
        assert ready == [(FfiLogLevel.INFO, "bindings_ffi::client", ready[0][2])]
        assert address in ready[0][2]
        # Filtered out: xmtp_core's info lines (only its warnings pass).
        assert not any(t.startswith("xmtp_core") and lvl == FfiLogLevel.INFO for lvl, t, _ in recorder.lines)

        # A logger that throws does not break the library.
        set_logger(Broken(), "info")
        run(scenario())

        with pytest.raises(FfiError.InvalidConfiguration):
            set_logger(recorder, "bindings_ffi=loud")
    finally:
        clear_logger()
    before = len(recorder.lines)
    run(scenario())
    assert len(recorder.lines) == before
