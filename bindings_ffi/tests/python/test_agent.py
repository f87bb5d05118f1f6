"""An agent whose handler is a Python coroutine answers in the same conversation."""

from bindings_ffi import FfiAgentHandler, FfiError, create_client
from conftest import Collector, run


class Echo(FfiAgentHandler):
    def __init__(self):
        self.seen = []

    async def on_message(self, message):
        self.seen.append(message.text)
        if message.text == "fail":
            raise RuntimeError("the handler failed")
        if message.text == "quiet":
            return None
        return f"echo: {message.text}"


def test_a_python_agent_replies_to_each_person_in_their_conversation(node_url):
    async def scenario():
        agent_client = await create_client(node_url, None, b"", None)
        alice = await create_client(node_url, None, b"", None)
        carol = await create_client(node_url, None, b"", None)
        echo = Echo()
        agent = await agent_client.start_agent(echo)
        assert agent.address() == agent_client.address()

        alice_inbox, carol_inbox = Collector(), Collector()
        handles = [await alice.stream(alice_inbox), await carol.stream(carol_inbox)]
        for text in ("fail", "quiet", "ping"):
            await alice.send(agent.address(), text)
        await carol.send(agent.address(), "hello")

        reply = await alice_inbox.next_text("echo: ping")
        assert reply.sender_address == agent.address()
        assert reply.conversation_id == agent.address()
        assert (await carol_inbox.next_text("echo: hello")).sender_address == agent.address()
        for handle in handles:
            handle.end()

        # One conversation's messages reach the handler once each, in order;
        # the failing and the quiet one get no reply.
        assert [t for t in echo.seen if t != "hello"] == ["fail", "quiet", "ping"]
        assert sorted(echo.seen) == sorted(["fail", "quiet", "ping", "hello"])
        await alice.sync()
        texts = [m.text for m in alice.messages(agent.address())]
        assert texts == ["fail", "quiet", "ping", "echo: ping"]

        await agent.stop()
        await agent.stop()
        assert agent.is_stopped()

    run(scenario())


def test_an_agent_on_a_revoked_installation_does_not_start(node_url):
    async def scenario():
        client = await create_client(node_url, None, b"", None)
        await client.revoke(client.installation_id())
        await client.start_agent(Echo())

    try:
        run(scenario())
    except FfiError.InstallationRevoked as e:
        assert "revoked" in str(e)
    else:
        raise AssertionError("the agent started on a revoked installation")
