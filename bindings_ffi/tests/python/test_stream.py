"""Streams: a Python callback receives new messages; its handle ends it."""

import gc

from bindings_ffi import FfiLocalWallet, create_client
from conftest import Collector, run


def test_a_stream_callback_receives_messages_until_its_handle_is_ended(node_url):
    async def scenario():
        alice = await create_client(node_url, None, b"", None)
        bob = await create_client(node_url, None, b"", None)
        collector = Collector()
        handle = await bob.stream(collector)
        assert not handle.is_closed()

        sent = await alice.send(bob.address(), "streamed to bob")
        received = await collector.next_text("streamed to bob")
        assert received.id == sent
        assert received.sender_address == alice.address()
        assert received.conversation_id == alice.address()

        handle.end()
        handle.end()  # ending twice is harmless
        assert handle.is_closed()

        # A second stream is the barrier: once it has the next message, the
        # closed stream would have had it too, had it still been running.
        barrier = Collector()
        second = await bob.stream(barrier)
        await alice.send(bob.address(), "after close")
        await barrier.next_text("after close")
        second.end()
        assert "after close" not in collector.drain_texts()

    run(scenario())


def test_a_conversation_stream_only_delivers_that_conversation(node_url):
    async def scenario():
        alice = await create_client(node_url, None, b"", None)
        carol = await create_client(node_url, None, b"", None)
        bob = await create_client(node_url, None, b"", None)
        only_carol = Collector()
        everything = Collector()
        handles = [
            await bob.stream_conversation(carol.address().lower(), only_carol),
            await bob.stream(everything),
        ]
        await alice.send(bob.address(), "from alice")
        await carol.send(bob.address(), "from carol")
        await everything.next_text("from alice")
        await everything.next_text("from carol")
        message = await only_carol.next_message()
        assert (message.text, message.sender_address) == ("from carol", carol.address())
        for handle in handles:
            handle.end()
        assert only_carol.drain_texts() == []

    run(scenario())


class Flaky(Collector):
    """A callback that throws on its first message."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def on_message(self, message):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("the app's handler failed")
        super().on_message(message)


def test_a_callback_that_throws_does_not_stop_the_stream(node_url):
    async def scenario():
        alice = await create_client(node_url, None, b"", FfiLocalWallet().as_signer())
        bob = await create_client(node_url, None, b"", None)
        flaky = Flaky()
        handle = await bob.stream(flaky)
        await alice.send(bob.address(), "dropped by the handler")
        await alice.send(bob.address(), "handled")
        message = await flaky.next_message()
        assert message.text == "handled"
        assert flaky.calls == 2
        assert not handle.is_closed()
        handle.end()

    run(scenario())


def test_messages_sent_by_the_client_itself_appear_in_its_stream(node_url):
    async def scenario():
        alice = await create_client(node_url, None, b"", None)
        bob = await create_client(node_url, None, b"", None)
        collector = Collector()
        handle = await alice.stream(collector)
        sent = await alice.send(bob.address(), "my own")
        mine = await collector.next_text("my own")
        assert mine.id == sent and mine.sender_address == alice.address()
        handle.end()

    run(scenario())


def test_freeing_the_handle_ends_the_stream(node_url):
    async def scenario():
        alice = await create_client(node_url, None, b"", None)
        bob = await create_client(node_url, None, b"", None)
        dropped = Collector()
        handle = await bob.stream(dropped)
        await alice.send(bob.address(), "before")
        await dropped.next_text("before")
        del handle
        gc.collect()

        barrier = Collector()
        second = await bob.stream(barrier)
        await alice.send(bob.address(), "after the handle was freed")
        await barrier.next_text("after the handle was freed")
        second.end()
        assert dropped.drain_texts() == []

    run(scenario())
