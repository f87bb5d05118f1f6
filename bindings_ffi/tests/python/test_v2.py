"""XMTP V2 conversations beside our own Olm ones, through the generated
Python bindings, against a real node."""

import pytest

from bindings_ffi import (
    FfiError,
    FfiLocalWallet,
    FfiPaging,
    FfiProtocol,
    FfiSignerError,
    FfiV2Identity,
    FfiV2IdentityOrigin,
    FfiWalletSigner,
    create_client,
)
from conftest import Collector, run


async def wallet_client(node_url, wallet=None):
    wallet = wallet or FfiLocalWallet()
    return await create_client(node_url, None, b"", wallet.as_signer())


def test_two_clients_talk_over_v2_then_olm_and_see_one_history(node_url):
    async def scenario():
        alice = await wallet_client(node_url)
        bob = await wallet_client(node_url)
        assert alice.v2_identity() is None
        assert not await alice.can_message_v2(bob.address())

        made = await alice.enable_v2()
        assert made.origin == FfiV2IdentityOrigin.CREATED
        assert len(made.identity_key) == 130 and made.identity_key.startswith("04")
        assert alice.v2_identity() == FfiV2Identity(
            identity_key=made.identity_key, origin=FfiV2IdentityOrigin.LOADED
        )
        assert (await alice.enable_v2()).origin == FfiV2IdentityOrigin.LOADED
        bob_identity = await bob.enable_v2()
        assert bob_identity.identity_key != made.identity_key
        assert await alice.can_message_v2(bob.address().lower())

        collector = Collector()
        handle = await bob.stream(collector)
        first = await alice.send_v2(bob.address(), "gm over v2")
        streamed = await collector.next_text("gm over v2")
        handle.end()
        assert (streamed.id, streamed.protocol) == (first, FfiProtocol.V2)
        assert streamed.conversation_id.startswith("/xmtp/0/m-")

        await bob.sync()
        reply = await bob.send_v2(alice.address(), "gm back over v2")
        # Bob has installations of ours: the automatic choice is Olm.
        auto = await alice.send_auto(bob.address(), "now over olm")
        assert alice.message(auto).protocol == FfiProtocol.OLM
        await alice.sync()
        await bob.sync()

        expected = [
            (first, alice.address(), "gm over v2", FfiProtocol.V2),
            (reply, bob.address(), "gm back over v2", FfiProtocol.V2),
            (auto, alice.address(), "now over olm", FfiProtocol.OLM),
        ]
        for me, peer in ((alice, bob), (bob, alice)):
            history = me.messages_with(peer.address())
            assert [(m.id, m.sender_address, m.text, m.protocol) for m in history] == expected
            topic = history[0].conversation_id
            assert history[1].conversation_id == topic
            assert history[2].conversation_id == peer.address()
            # The V2 conversation and the Olm one, each with its own messages.
            assert [m.id for m in me.messages(topic)] == [first, reply]
            assert [m.id for m in me.messages(peer.address())] == [auto]
            kinds = {(c.kind, c.id) for c in me.list_conversations()}
            assert kinds == {("v2", topic), ("dm", peer.address())}
        # V2 messages name the sender's identity key as the installation.
        assert bob.message(first).sender_installation_id == made.identity_key

        newest = bob.messages_with(alice.address(), FfiPaging(limit=2, descending=True))
        assert [m.protocol for m in newest] == [FfiProtocol.OLM, FfiProtocol.V2]
        only_v2 = bob.messages_with(alice.address(), FfiPaging(sent_before_ns=newest[0].sent_ns))
        assert [m.id for m in only_v2] == [first, reply]

    run(scenario())


def test_send_auto_uses_v2_for_a_peer_without_installations_of_ours(node_url):
    """Carol's only installation is revoked, but her XMTP identity stays: the
    automatic choice falls back to V2, and her next device (a new database)
    recovers the identity from the node and reads the message."""

    async def scenario():
        carol_wallet = FfiLocalWallet()
        carol_phone = await wallet_client(node_url, carol_wallet)
        carol_key = (await carol_phone.enable_v2()).identity_key
        await carol_phone.revoke(carol_phone.installation_id())
        alice = await wallet_client(node_url)
        assert await alice.installations(carol_wallet.address()) == []

        # Without V2 enabled here there is no protocol to reach her.
        with pytest.raises(FfiError.PeerNotRegistered):
            await alice.send_auto(carol_wallet.address(), "hello?")
        await alice.enable_v2()
        sent = await alice.send_auto(carol_wallet.address(), "hello over v2")
        assert alice.message(sent).protocol == FfiProtocol.V2

        carol_laptop = await wallet_client(node_url, carol_wallet)
        recovered = await carol_laptop.enable_v2()
        assert recovered.origin == FfiV2IdentityOrigin.RECOVERED
        assert recovered.identity_key == carol_key
        await carol_laptop.sync()
        [message] = carol_laptop.messages_with(alice.address())
        assert (message.id, message.text, message.protocol) == (sent, "hello over v2", FfiProtocol.V2)

    run(scenario())


class SignsOnce(FfiWalletSigner):
    """Signs the installation's association, then declines everything."""

    def __init__(self):
        self.key = FfiLocalWallet()
        self.asked = []

    def address(self):
        return self.key.address()

    async def sign_text(self, text):
        self.asked.append(text)
        if len(self.asked) > 1:
            raise FfiSignerError.Declined("not now")
        return self.key.sign_text(text)


def test_v2_errors_are_typed(node_url):
    async def scenario():
        alice = await wallet_client(node_url)
        bob = await wallet_client(node_url)
        await bob.enable_v2()

        with pytest.raises(FfiError.InvalidConfiguration) as raised:
            await alice.send_v2(bob.address(), "too early")
        assert "enable_v2" in str(raised.value)

        with pytest.raises(FfiError.InvalidAddress):
            await alice.can_message_v2("0x1234")

        await alice.enable_v2()
        nobody = FfiLocalWallet().address()
        with pytest.raises(FfiError.PeerNotRegistered) as raised:
            await alice.send_v2(nobody, "anyone there?")
        assert nobody in str(raised.value)
        with pytest.raises(FfiError.PeerNotRegistered):
            await alice.send_auto(nobody, "anyone there?")

        wallet = SignsOnce()
        dave = await create_client(node_url, None, b"", wallet)
        with pytest.raises(FfiError.Wallet) as raised:
            await dave.enable_v2()
        assert "not now" in str(raised.value)
        assert "XMTP : Create Identity" in wallet.asked[-1]
        assert dave.v2_identity() is None

    run(scenario())
