// Our CLI and xmtp-js against `xmtp-node --require-auth`: both publish with bearer tokens
// (the CLI through XmtpApi::set_auth_token), so a new wallet registers (privatestore and contact
// bundle), and messages flow both ways.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const h = require("../lib/harness.cjs");
const { TEST_TIMEOUT } = require("../lib/js_suite.cjs");

let node;
const closers = [];
before(async () => {
  node = await h.startNode({ extraArgs: ["--require-auth"] });
});
after(async () => {
  for (const close of closers.reverse()) await close();
  await node?.stop();
});

test(
  "a new CLI wallet registers and talks with xmtp-js through a node that requires tokens",
  {
    timeout: TEST_TIMEOUT,
  },
  async () => {
    const rust = h.cliUser(node);
    closers.push(() => rust.cleanup());
    const [reg] = await rust.run(["register"]);
    assert.equal(reg.v2_identity, "created");

    const js = await h.jsClient(node, h.randomWallet());
    closers.push(() => js.close());
    const convo = await js.conversations.newConversation(rust.address, { conversationId: "interop/auth", metadata: {} });
    await convo.send("to rust, with a token");
    const [sent] = await rust.run(["send", js.address, "to js, with a token"]);
    assert.equal(sent.protocol, "v2");

    const lines = await rust.run(["messages", js.address]);
    assert.ok(lines.some((l) => l.type === "message" && !l.outgoing && l.text === "to rust, with a token"));
    const all = (await Promise.all((await js.conversations.list()).map((c) => c.messages()))).flat();
    assert.ok(all.some((m) => m.senderAddress === rust.address && m.content === "to js, with a token"));
  },
);
