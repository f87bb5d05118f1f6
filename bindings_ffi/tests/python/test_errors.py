"""Every failure crosses as a typed exception with a message."""

import socket

import pytest

from bindings_ffi import (
    FfiError,
    FfiLocalWallet,
    FfiSignerError,
    FfiWalletSigner,
    create_client,
    recover_signer,
)
from conftest import run


def unused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_malformed_node_url_is_a_configuration_error():
    async def scenario():
        await create_client("not a url", None, b"", None)

    with pytest.raises(FfiError.InvalidConfiguration) as raised:
        run(scenario())
    assert "not a url" in str(raised.value)


def test_a_node_that_does_not_answer_is_a_network_error():
    async def scenario():
        await create_client(f"http://127.0.0.1:{unused_port()}", None, b"", None)

    with pytest.raises(FfiError.Network) as raised:
        run(scenario())
    assert str(raised.value)


def test_sending_to_an_invalid_address_is_an_invalid_address_error(node_url):
    async def scenario():
        alice = await create_client(node_url, None, b"", None)
        await alice.send("0x1234", "hello?")

    with pytest.raises(FfiError.InvalidAddress) as raised:
        run(scenario())
    assert "0x1234" in str(raised.value)
    assert isinstance(raised.value, FfiError)


def test_sending_to_an_unregistered_address_says_so(node_url):
    async def scenario():
        alice = await create_client(node_url, None, b"", None)
        await alice.send(FfiLocalWallet().address(), "anyone there?")

    with pytest.raises(FfiError.PeerNotRegistered) as raised:
        run(scenario())
    assert "no registered installation" in str(raised.value)


def test_a_database_key_of_the_wrong_length_is_refused(node_url, tmp_path):
    async def scenario():
        await create_client(node_url, str(tmp_path / "x.db3"), b"short", None)

    with pytest.raises(FfiError.InvalidConfiguration) as raised:
        run(scenario())
    assert "32 bytes" in str(raised.value)


class DecliningWallet(FfiWalletSigner):
    def __init__(self):
        self.key = FfiLocalWallet()

    def address(self):
        return self.key.address()

    async def sign_text(self, text):
        raise FfiSignerError.Declined("not now")


class LyingWallet(FfiWalletSigner):
    """Claims one address and signs with another key."""

    def address(self):
        return FfiLocalWallet().address()

    async def sign_text(self, text):
        return FfiLocalWallet().sign_text(text)


def test_a_wallet_that_declines_or_signs_for_another_address_is_a_wallet_error(node_url):
    for wallet, expected in ((DecliningWallet(), "not now"), (LyingWallet(), "recovers to")):

        async def scenario():
            await create_client(node_url, None, b"", wallet)

        with pytest.raises(FfiError.Wallet) as raised:
            run(scenario())
        assert expected in str(raised.value)


def test_local_wallets_sign_recoverably_and_reject_bad_keys():
    wallet = FfiLocalWallet()
    signature = wallet.sign_text("hello")
    assert len(signature) == 65
    assert recover_signer("hello", signature) == wallet.address()
    again = FfiLocalWallet.from_hex("0x" + "11" * 32)
    assert again.address() == FfiLocalWallet.from_hex("11" * 32).address()
    with pytest.raises(FfiError.Wallet):
        FfiLocalWallet.from_hex("zz")
    with pytest.raises(FfiError.Crypto):
        recover_signer("hello", b"\x00" * 3)
