"""A direct conversation between two clients through the generated Python
bindings, against a real node."""

import os

import pytest

import bindings_ffi
from bindings_ffi import FfiError, FfiLocalWallet, FfiPaging, FfiWalletSigner, create_client
from conftest import run


class AppWallet(FfiWalletSigner):
    """A wallet implemented in Python, as an app's own wallet would be: the
    library calls back into it to sign the installation's association."""

    def __init__(self):
        self.key = FfiLocalWallet()
        self.signed = []

    def address(self):
        return self.key.address()

    async def sign_text(self, text):
        self.signed.append(text)
        return self.key.sign_text(text)


def test_two_clients_exchange_messages_and_agree_on_the_history(node_url):
    async def scenario():
        app_wallet = AppWallet()
        alice = await create_client(node_url, None, b"", app_wallet)
        bob = await create_client(node_url, None, b"", FfiLocalWallet().as_signer())
        assert alice.address() == app_wallet.address()
        [association] = app_wallet.signed
        assert "Grant installation" in association
        assert alice.installation_id() in association.lower()

        first = await alice.send(bob.address(), "gm bob")
        await bob.sync()
        second = await bob.send(alice.address(), "gm alice")
        await alice.sync()
        third = await alice.send(bob.address().lower(), "how are you?")
        summary = await bob.sync()
        assert summary.new_messages >= 1

        expected = [
            (first, alice.address(), "gm bob"),
            (second, bob.address(), "gm alice"),
            (third, alice.address(), "how are you?"),
        ]
        for me, peer in ((alice, bob), (bob, alice)):
            history = me.messages(peer.address())
            assert [(m.id, m.sender_address, m.text) for m in history] == expected
            assert all(m.conversation_id == peer.address() for m in history)
            assert all(m.content_type == bindings_ffi.text_content_type() for m in history)

        conversations = bob.list_conversations()
        assert [c.peer_address for c in conversations] == [alice.address()]
        assert conversations[0].kind == "dm"
        assert conversations[0].last_message.id == third

        newest = bob.messages(alice.address(), FfiPaging(limit=1, descending=True))
        assert [m.text for m in newest] == ["how are you?"]
        assert bob.message(second).text == "gm alice"
        assert bob.message_count() == 3

    run(scenario())


def test_custom_content_crosses_with_its_type_bytes_and_fallback(node_url):
    async def scenario():
        alice = await create_client(node_url, None, b"", None)
        bob = await create_client(node_url, None, b"", None)
        await alice.send_content(bob.address(), "example.com/reaction:1.0", b"\x01\x02", "reacted")
        await bob.sync()
        [message] = bob.messages(alice.address())
        assert message.content_type == "example.com/reaction:1.0"
        assert message.content == b"\x01\x02"
        assert message.text is None and message.fallback == "reacted"

    run(scenario())


def test_a_client_reopened_from_its_database_keeps_its_installation_and_messages(node_url, tmp_path):
    db = str(tmp_path / "alice.db3")
    key = os.urandom(32)
    wallet = FfiLocalWallet()

    async def first_run():
        alice = await create_client(node_url, db, key, wallet.as_signer())
        bob = await create_client(node_url, None, b"", None)
        await bob.send(alice.address(), "see you after the restart")
        return alice.installation_id(), bob.address()

    installation, bob_address = run(first_run())

    async def second_run():
        alice = await create_client(node_url, db, key, wallet.as_signer())
        assert alice.installation_id() == installation
        await alice.sync()
        assert [m.text for m in alice.messages(bob_address)] == ["see you after the restart"]
        [own] = await alice.installations(None)
        assert own.id == installation and own.is_current

    run(second_run())

    async def wrong_key():
        await create_client(node_url, db, os.urandom(32), wallet.as_signer())

    with pytest.raises(FfiError.Storage) as raised:
        run(wrong_key())
    assert "database key" in str(raised.value)


def test_installations_of_a_peer_and_revocation(node_url):
    async def scenario():
        wallet = FfiLocalWallet()
        phone = await create_client(node_url, None, b"", wallet.as_signer())
        laptop = await create_client(node_url, None, b"", wallet.as_signer())
        bob = await create_client(node_url, None, b"", None)
        seen = {i.id for i in await bob.installations(phone.address())}
        assert seen == {phone.installation_id(), laptop.installation_id()}

        await phone.revoke(laptop.installation_id())
        seen = {i.id for i in await bob.installations(phone.address())}
        assert seen == {phone.installation_id()}
        # The laptop learns of its revocation from the node, then refuses to send.
        await laptop.installations(None)
        assert laptop.is_revoked()
        with pytest.raises(FfiError.InstallationRevoked) as raised:
            await laptop.send(bob.address(), "still here?")
        assert "revoked" in str(raised.value)

    run(scenario())
