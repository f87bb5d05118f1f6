// Suite C: a wallet's V2 identity is recovered from the `privatestore` topic across clients:
// made by xmtp-js and recovered by our CLI, and made by our CLI and recovered by xmtp-js.
"use strict";

const { describe, test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const h = require("../lib/harness.cjs");
const { TEST_TIMEOUT } = require("../lib/js_suite.cjs");

describe("V2 identity recovery through the privatestore topic", { timeout: 4 * TEST_TIMEOUT }, () => {
  let node;
  const closers = [];

  before(async () => {
    node = await h.startNode();
  });

  after(async () => {
    for (const close of closers.reverse()) await close();
    await node?.stop();
  });

  test("an identity created by xmtp-js is recovered by the Rust CLI", { timeout: TEST_TIMEOUT }, async () => {
    const wallet = h.randomWallet();
    const js = await h.jsClient(node, wallet);
    const jsKey = h.jsIdentityKeyHex(js);
    await js.close();

    const rust = h.cliUser(node, wallet);
    closers.push(() => rust.cleanup());
    const [reg] = await rust.run(["register"]);
    assert.equal(reg.type, "registered");
    assert.equal(reg.address.toLowerCase(), wallet.address.toLowerCase());
    assert.equal(reg.v2_identity, "recovered");
    assert.equal(reg.v2_identity_key, jsKey);

    // The recovered identity works: a third party's message to the wallet, sent to the bundle
    // xmtp-js published, is read by the Rust client.
    const peerWallet = h.randomWallet();
    const peer = await h.jsClient(node, peerWallet);
    closers.push(() => peer.close());
    const convo = await peer.conversations.newConversation(wallet.address);
    await convo.send("for the recovered identity");
    const lines = await rust.run(["messages", peerWallet.address]);
    assert.deepEqual(
      lines.filter((l) => l.type === "message").map((m) => [m.sender.toLowerCase(), m.text, m.protocol]),
      [[peerWallet.address.toLowerCase(), "for the recovered identity", "v2"]],
    );
  });

  test("an identity created by the Rust CLI is recovered by xmtp-js", { timeout: TEST_TIMEOUT }, async () => {
    const wallet = h.randomWallet();
    const rust = h.cliUser(node, wallet);
    closers.push(() => rust.cleanup());
    const [reg] = await rust.run(["register"]);
    assert.equal(reg.v2_identity, "created");

    const js = await h.jsClient(node, wallet);
    closers.push(() => js.close());
    assert.equal(h.jsIdentityKeyHex(js), reg.v2_identity_key);
    // xmtp-js found the stored bundle and did not publish a contact bundle of its own with a
    // new key: the contact others see is still the CLI's identity.
    const other = await h.jsClient(node, h.randomWallet());
    closers.push(() => other.close());
    const contact = await other.getUserContact(wallet.address);
    assert.equal(Buffer.from(contact.identityKey.secp256k1Uncompressed.bytes).toString("hex"), reg.v2_identity_key);

    // And the recovered keys decrypt: the Rust side sends, xmtp-js on the same wallet reads.
    const [sent] = await rust.run(["send", other.address, "sent by the CLI"]);
    assert.equal(sent.protocol, "v2");
    const convos = await js.conversations.list();
    assert.equal(convos.length, 1);
    const messages = await convos[0].messages();
    assert.deepEqual(messages.map((m) => [m.senderAddress, m.content]), [[wallet.address, "sent by the CLI"]]);
  });

  test("a second CLI database with the same wallet recovers the same identity", { timeout: TEST_TIMEOUT }, async () => {
    const wallet = h.randomWallet();
    const first = h.cliUser(node, wallet);
    const second = h.cliUser(node, wallet);
    closers.push(() => first.cleanup(), () => second.cleanup());
    const [a] = await first.run(["register"]);
    const [b] = await second.run(["register"]);
    assert.equal(a.v2_identity, "created");
    assert.equal(b.v2_identity, "recovered");
    assert.equal(b.v2_identity_key, a.v2_identity_key);
  });
});
