"""The secure channel: X3DH over XMTP once, then local AES-256-GCM."""

import pytest

from bindings_ffi import FfiError, create_client
from conftest import run


def test_a_sealed_message_opens_only_unaltered_once_and_from_its_sender(node_url):
    async def scenario():
        alice = await create_client(node_url, None, b"", None)
        bob = await create_client(node_url, None, b"", None)
        await bob.enable_secure_channel()

        sealed = await alice.encrypt(b"the launch code", bob.address())
        assert len(sealed.nonce) == 12
        assert b"the launch code" not in sealed.ciphertext
        assert await bob.decrypt(sealed.nonce, sealed.ciphertext, alice.address()) == b"the launch code"

        with pytest.raises(FfiError.Authentication):
            await bob.decrypt(sealed.nonce, sealed.ciphertext, alice.address())

        reply = await bob.encrypt(b"received", alice.address())
        assert await alice.decrypt(reply.nonce, reply.ciphertext, bob.address()) == b"received"

        second = await alice.encrypt(b"again", bob.address())
        assert second.nonce != sealed.nonce
        tampered = bytearray(second.ciphertext)
        tampered[-1] ^= 1
        with pytest.raises(FfiError.Authentication):
            await bob.decrypt(second.nonce, bytes(tampered), alice.address())
        with pytest.raises(FfiError.Authentication):
            await bob.decrypt(second.nonce, second.ciphertext, bob.address())

        with pytest.raises(FfiError.SecureChannel):
            await alice.encrypt(b"to myself", alice.address())

    run(scenario())
