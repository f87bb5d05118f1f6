#!/usr/bin/env python3
"""Writes a few valid seed inputs for the node targets into corpus/<target>/
(ignored by git): Authorization values from the tokens in
../../xmtp_cryptography/tests/vectors/v2/, JSON bodies as the gateway takes
them, and protobuf-encoded gRPC requests. Run from this directory before
`cargo fuzz run`: python3 seeds.py"""
import base64
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "..", "xmtp_cryptography", "tests", "vectors", "v2")


def load(name):
    with open(os.path.join(VECTORS, name)) as f:
        return json.load(f)


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(number, data):
    return varint(number << 3 | 2) + varint(len(data)) + data


def field_varint(number, value):
    return varint(number << 3) + varint(value)


own = load("own.json")
js = load("xmtp_js_13.json")
topic = own["invitation_topic"].encode()
contact_topic = ("/xmtp/0/contact-" + own["alice_address"] + "/proto").encode()

# Envelope: content_topic = 1, timestamp_ns = 2, message = 3.
envelope = field_bytes(1, topic) + field_varint(2, 1_700_000_000_000_000_000) + field_bytes(3, b"hi")
v3_envelope = field_bytes(1, b"/xmtp/3/w-abc/proto") + field_bytes(3, b"\x01\x02")
# PagingInfo: limit = 1, cursor = 2 (Cursor.index = 1: digest = 1, sender_time_ns = 2), direction = 3.
index = field_bytes(1, bytes(32)) + field_varint(2, 5)
paging = field_varint(1, 10) + field_bytes(2, field_bytes(1, index)) + field_varint(3, 1)
# QueryRequest: content_topics = 1, start_time_ns = 2, end_time_ns = 3, paging_info = 4.
query = field_bytes(1, topic) + field_varint(2, 1) + field_varint(3, 2**63) + field_bytes(4, paging)

json_envelope = {
    "contentTopic": topic.decode(),
    "timestampNs": "1700000000000000000",
    "message": base64.b64encode(b"hi").decode(),
}
json_query = {
    "contentTopics": [topic.decode(), contact_topic.decode()],
    "startTimeNs": "1",
    "endTimeNs": "9223372036854775808",
    "pagingInfo": {
        "limit": 10,
        "direction": "SORT_DIRECTION_ASCENDING",
        "cursor": {"index": {"digest": base64.b64encode(bytes(32)).decode(), "senderTimeNs": "5"}},
    },
}

seeds = {
    "node_auth": {
        "own_bearer": ("Bearer " + base64.b64encode(bytes.fromhex(own["token"])).decode()).encode(),
        "js_bearer": ("Bearer " + base64.b64encode(bytes.fromhex(js["token"])).decode()).encode(),
        "own_token_bytes": bytes.fromhex(own["token"]),
    },
    "node_json": {
        "publish": json.dumps({"envelopes": [json_envelope]}).encode(),
        "query": json.dumps(json_query).encode(),
        "batch_query": json.dumps({"requests": [json_query, {"contentTopics": ["t"]}]}).encode(),
        "subscribe": json.dumps({"contentTopics": [contact_topic.decode()]}).encode(),
        "empty": b"  \n",
    },
    "node_proto": {
        "publish": field_bytes(1, envelope) + field_bytes(1, v3_envelope),
        "query": query,
        "batch_query": field_bytes(1, query) + field_bytes(1, field_bytes(1, b"t")),
        "subscribe": field_bytes(1, contact_topic),
    },
}

for target, files in seeds.items():
    out = os.path.join(HERE, "corpus", target)
    os.makedirs(out, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"{target}: {len(files)} seeds in corpus/{target}/")
