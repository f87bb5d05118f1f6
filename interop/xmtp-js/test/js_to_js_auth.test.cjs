// Suite A again, against a node started with --require-auth: xmtp-js sends its bearer token
// (an identity key signed by the wallet, which signs the wallet address and a timestamp) on every
// publish, and the node must accept it. A publish without a token is refused, so the suite
// really runs with authentication on.
"use strict";
const { execFileSync } = require("node:child_process");
const { describe, test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const h = require("../lib/harness.cjs");
const { jsToJsSuite, TEST_TIMEOUT } = require("../lib/js_suite.cjs");

const supported = execFileSync(h.NODE_BIN, ["--help"], { encoding: "utf8" }).includes("--require-auth");

if (supported) {
  jsToJsSuite("xmtp-js <-> xmtp-js through xmtp-node --require-auth", ["--require-auth"]);

  describe("xmtp-node --require-auth without a token", () => {
    let node;
    before(async () => {
      node = await h.startNode({ extraArgs: ["--require-auth"] });
    });
    after(async () => node?.stop());

    test("a publish without a bearer token is refused (Unauthenticated)", { timeout: TEST_TIMEOUT }, async () => {
      const topic = `/xmtp/0/m-${Date.now()}/proto`;
      const resp = await fetch(`${node.httpUrl}/message/v1/publish`, {
        method: "POST",
        headers: { "Content-Type": "text/plain;charset=UTF-8" },
        body: JSON.stringify({
          envelopes: [{ contentTopic: topic, timestampNs: String(Date.now() * 1e6), message: "aGVsbG8=" }],
        }),
      });
      assert.equal(resp.status, 401);
      assert.equal((await resp.json()).code, 16);
      const query = await fetch(`${node.httpUrl}/message/v1/query`, {
        method: "POST",
        body: JSON.stringify({ contentTopics: [topic] }),
      });
      assert.equal(query.status, 200);
      assert.deepEqual((await query.json()).envelopes ?? [], []);
    });
  });
} else {
  test("xmtp-node --require-auth", { skip: `${h.NODE_BIN} has no --require-auth flag yet` }, () => {});
}
