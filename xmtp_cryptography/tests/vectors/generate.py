#!/usr/bin/env python3
"""Independent generator of the X3DH and AEAD vectors, with the Python
`cryptography` package (OpenSSL), so the Rust code is checked against a second
implementation. Run: python3 generate.py (writes x3dh.json and aead.json)."""
import json
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives import serialization

raw = dict(encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)

def x(seed):
    k = X25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
    return k, k.public_key().public_bytes(**raw)

def hkdf(salt, ikm, info):
    return HKDF(algorithm=SHA256(), length=32, salt=salt, info=info).derive(ikm)

ik_a, IK_A = x(0x01)
ik_b, IK_B = x(0x02)
spk_b, SPK_B = x(0x03)
opk_b, OPK_B = x(0x04)
ek_a, EK_A = x(0x05)
signer = Ed25519PrivateKey.from_private_bytes(bytes([0x06]) * 32)
SIGNING = signer.public_key().public_bytes(**raw)
sig = signer.sign(b"xmtp-v3-x3dh-signed-pre-key" + IK_B + SPK_B)

dh1 = ik_a.exchange(spk_b.public_key())
dh2 = ek_a.exchange(ik_b.public_key())
dh3 = ek_a.exchange(spk_b.public_key())
dh4 = ek_a.exchange(opk_b.public_key())
F = b"\xff" * 32
salt = b"\x00" * 32
sk_opk = hkdf(salt, F + dh1 + dh2 + dh3 + dh4, b"XMTP_X3DH_v1")
sk_no = hkdf(salt, F + dh1 + dh2 + dh3, b"XMTP_X3DH_v1")
init_key = hkdf(None, sk_opk, b"XMTP_X3DH_v1 initial message")

x3dh = {
    "source": "tests/vectors/generate.py (Python cryptography / OpenSSL)",
    "secret_keys": {"ik_a": "01" * 32, "ik_b": "02" * 32, "spk_b": "03" * 32, "opk_b": "04" * 32, "ek_a": "05" * 32, "ed25519_seed": "06" * 32},
    "public_keys": {"ik_a": IK_A.hex(), "ik_b": IK_B.hex(), "spk_b": SPK_B.hex(), "opk_b": OPK_B.hex(), "ek_a": EK_A.hex(), "signing_key": SIGNING.hex()},
    "signed_pre_key_signature": sig.hex(),
    "sk_with_one_time_pre_key": sk_opk.hex(),
    "sk_without_one_time_pre_key": sk_no.hex(),
    "initial_message_key_with_one_time_pre_key": init_key.hex(),
    "associated_data": (IK_A + IK_B).hex(),
}
json.dump(x3dh, open("x3dh.json", "w"), indent=2)

key = bytes(range(32))
nonce = bytes(range(12))
ad = b"xmtp-v3 row 42"
pt = b"The quick brown fox jumps over the lazy dog"
derived = hkdf(b"salt", b"input keying material", b"xmtp-v3-test")
subkey = hkdf(None, key, b"xmtp-v3-storage")
aead = {
    "source": "tests/vectors/generate.py (Python cryptography / OpenSSL)",
    "key": key.hex(), "nonce": nonce.hex(), "ad": ad.hex(), "plaintext": pt.hex(),
    "ciphertext_and_tag": AESGCM(key).encrypt(nonce, pt, ad).hex(),
    "hkdf": {"salt": b"salt".hex(), "ikm": b"input keying material".hex(), "info": b"xmtp-v3-test".hex(), "okm": derived.hex()},
    "subkey": {"info": b"xmtp-v3-storage".hex(), "okm": subkey.hex()},
    "sealed_under_subkey": (nonce + AESGCM(subkey).encrypt(nonce, pt, ad)).hex(),
}
json.dump(aead, open("aead.json", "w"), indent=2)
