#!/usr/bin/env python3
"""Writes a few valid seed inputs for the V2 targets into corpus/<target>/
(ignored by git) from the vectors in ../tests/vectors/v2/. Run from this
directory before `cargo fuzz run`: python3 seeds.py"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "tests", "vectors", "v2")


def load(name):
    with open(os.path.join(VECTORS, name)) as f:
        return json.load(f)


own = load("own.json")
js = load("xmtp_js_13.json")
pub = load("published.json")
h = bytes.fromhex

seeds = {
    "v2_contact": {
        "own_contact_v1": h(own["alice_contact_v1"]),
        "own_contact_v2": h(own["alice_contact_v2"]),
        "ios_contact_v2": bytes(pub["contact_bundle_v2"]["bytes"]),
        "ios_contact_v1_legacy": bytes(pub["contact_bundle_v1_legacy"]["bytes"]),
        "shared_secret_public_bundle": h(pub["shared_secret"]["you_public_key_bundle"]),
    },
    "v2_invitation": {
        "own_sealed": h(own["sealed_invitation"]),
        "js_sealed": h(js["invitation"]),
    },
    "v2_message": {
        "own_v2": h(own["message_v2"]),
        "own_v1": h(own["message_v1"]),
        "js_v2": h(js["message_v2"]),
        "js_v1": h(js["message_v1"]),
    },
    # First byte: length of the arbitrary signature that follows (none here).
    "v2_private_store": {
        "own_locked": b"\x00" + h(own["encrypted_private_key_bundle"]),
        "js_locked": b"\x00" + h(js["alice_privatestore_message"]),
        "own_private_bundle": h(own["bob_private_key_bundle"]),
    },
    "v2_token": {
        "own_token": h(own["token"]),
        "js_token": h(js["token"]),
        "own_token_base64": __import__("base64").b64encode(h(own["token"])),
    },
}

for target, files in seeds.items():
    out = os.path.join(HERE, "corpus", target)
    os.makedirs(out, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"{target}: {len(files)} seeds in corpus/{target}/")
