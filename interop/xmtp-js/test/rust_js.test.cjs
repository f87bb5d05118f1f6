// Suite B: our Rust client (the `xmtp` CLI) and xmtp-js talk over XMTP V2 through one node,
// each reading the other's invitations and messages (and so verifying the other's signatures);
// suite D: messages tampered with by a peer are refused by the Rust client.
"use strict";

const { describe, test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { createHash } = require("node:crypto");
const { content, message } = require("@xmtp/proto");
const Long = require("long");
const { getAddress } = require("viem");
const { ConversationV1, ConversationV2, SignedPublicKeyBundle } = require("@xmtp/xmtp-js");
const h = require("../lib/harness.cjs");
const { TEST_TIMEOUT } = require("../lib/js_suite.cjs");

const lower = (a) => a.toLowerCase();
const incoming = (lines) => lines.filter((l) => l.type === "message" && !l.outgoing);

describe("Rust (xmtp CLI) <-> xmtp-js over V2", { timeout: 8 * TEST_TIMEOUT }, () => {
  let node;
  let rust; // a CLI user
  let rustKey; // its V2 identity key (130 hex)
  let jsWallet;
  let js; // an xmtp-js client
  let jsConvo;
  let replyTopic; // the V2 conversation the CLI started with the JS user
  const closers = [];

  before(async () => {
    node = await h.startNode();
    rust = h.cliUser(node);
    closers.push(() => rust.cleanup());
    jsWallet = h.randomWallet();
  });

  after(async () => {
    for (const close of closers.reverse()) await close();
    await node?.stop();
  });

  test("xmtp register publishes a V2 contact bundle xmtp-js can use", { timeout: TEST_TIMEOUT }, async () => {
    const [reg] = await rust.run(["register"]);
    assert.equal(reg.type, "registered");
    assert.equal(lower(reg.address), lower(rust.address));
    assert.equal(reg.v2_identity, "created");
    assert.match(reg.v2_identity_key, /^04[0-9a-f]{128}$/);
    rustKey = reg.v2_identity_key;

    js = await h.jsClient(node, jsWallet);
    closers.push(() => js.close());
    assert.equal(await js.canMessage(rust.address), true);
    // xmtp-js decodes the contact bundle and checks the wallet's signature of the identity key.
    const contact = await js.getUserContact(rust.address);
    assert.ok(contact, "the Rust user's contact bundle");
    assert.equal(await contact.walletSignatureAddress(), rust.address);
    assert.equal(Buffer.from(contact.identityKey.secp256k1Uncompressed.bytes).toString("hex"), rustKey);

    // Registering again with the same database loads the identity, unchanged.
    const [again] = await rust.run(["register"]);
    assert.equal(again.v2_identity, "loaded");
    assert.equal(again.v2_identity_key, rustKey);
  });

  test("a JS user's invitation and messages are read by the Rust user", { timeout: TEST_TIMEOUT }, async () => {
    // A conversation id makes xmtp-js start a V2 conversation whatever form of contact bundle
    // it finds (apps pass one; see the next test for the default).
    jsConvo = await js.conversations.newConversation(rust.address, {
      conversationId: "interop/rust-js",
      metadata: {},
    });
    assert.ok(jsConvo instanceof ConversationV2);
    await jsConvo.send("hello rust");
    await jsConvo.send("second from js");

    const lines = await rust.run(["messages", jsWallet.address]);
    const got = incoming(lines);
    assert.deepEqual(
      got.map((m) => [lower(m.sender), m.text, m.protocol, m.content_type, m.conversation]),
      [
        [lower(jsWallet.address), "hello rust", "v2", "xmtp.org/text:1.0", jsConvo.topic],
        [lower(jsWallet.address), "second from js", "v2", "xmtp.org/text:1.0", jsConvo.topic],
      ],
    );
    assert.ok(BigInt(got[0].sent_ns) <= BigInt(got[1].sent_ns));

    const list = await rust.run(["list"]);
    assert.ok(
      JSON.stringify(list).toLowerCase().includes(lower(jsWallet.address)),
      `xmtp list names the JS peer: ${JSON.stringify(list)}`,
    );
  });

  test("a JS user's V1 direct message is read by the Rust user", { timeout: TEST_TIMEOUT }, async () => {
    const v1 = new ConversationV1(js, rust.address, new Date());
    await v1.send("v1 from js");
    const lines = await rust.run(["messages", jsWallet.address]);
    const got = incoming(lines).filter((m) => m.protocol === "v1");
    assert.deepEqual(got.map((m) => [lower(m.sender), m.text]), [[lower(jsWallet.address), "v1 from js"]]);
  });

  test(
    "xmtp-js's default conversation with a Rust user is V2",
    {
      timeout: TEST_TIMEOUT,
    },
    async () => {
      const contact = await js.getUserContact(rust.address);
      assert.ok(contact instanceof SignedPublicKeyBundle, "the newest contact bundle is the V2 (signed) form");
      const fresh = await h.jsClient(node, h.randomWallet());
      try {
        const convo = await fresh.conversations.newConversation(rust.address);
        assert.ok(convo instanceof ConversationV2);
      } finally {
        await fresh.close();
      }
    },
  );

  test("the Rust user's reply is read (and verified) by xmtp-js", { timeout: TEST_TIMEOUT }, async () => {
    const [sent] = await rust.run(["send", jsWallet.address, "hello js, from rust"]);
    assert.equal(sent.type, "sent");
    assert.equal(sent.protocol, "v2");

    // xmtp-js verifies the sender's signature and key bundle while decoding; a message that
    // fails is dropped, so seeing it here means it verified.
    const convos = (await js.conversations.list()).filter((c) => lower(c.peerAddress) === lower(rust.address));
    assert.ok(convos.length >= 1);
    const all = (await Promise.all(convos.map((c) => c.messages()))).flat();
    const reply = all.find((m) => m.content === "hello js, from rust");
    assert.ok(reply, `the reply among ${JSON.stringify(all.map((m) => m.content))}`);
    assert.equal(reply.senderAddress, rust.address);
    // The JS user's conversation has a conversation id; the CLI, like xmtp-js's
    // newConversation(peer), uses (here: starts) the peer's V2 conversation without one.
    assert.equal(reply.conversation.topic, sent.conversation);
    replyTopic = sent.conversation;
    assert.ok(reply.conversation instanceof ConversationV2);
    assert.equal(reply.conversation.context?.conversationId ?? "", "");

    const lines = await rust.run(["messages", jsWallet.address]);
    const mine = lines.filter((l) => l.type === "message" && l.outgoing);
    assert.deepEqual(mine.map((m) => [m.text, m.protocol]), [["hello js, from rust", "v2"]]);
  });

  test("a Rust user starts a conversation with a JS-only user (the CLI picks V2)", { timeout: TEST_TIMEOUT }, async () => {
    const daveWallet = h.randomWallet();
    const dave = await h.jsClient(node, daveWallet);
    closers.push(() => dave.close());

    const [sent] = await rust.run(["send", daveWallet.address, "first contact from rust"]);
    assert.equal(sent.protocol, "v2");

    const convos = await dave.conversations.list();
    assert.equal(convos.length, 1);
    assert.equal(convos[0].peerAddress, rust.address);
    const messages = await convos[0].messages();
    assert.deepEqual(messages.map((m) => [m.senderAddress, m.content]), [[rust.address, "first contact from rust"]]);

    assert.equal(convos[0].topic, sent.conversation);
    // And back, in the conversation the Rust user's invitation opened, which the CLI keeps using.
    await convos[0].send("dave answers");
    const [again] = await rust.run(["send", daveWallet.address, "rust again"]);
    assert.equal(again.conversation, sent.conversation);
    const lines = await rust.run(["messages", daveWallet.address]);
    assert.deepEqual(
      lines.filter((l) => l.type === "message").map((m) => [m.outgoing, m.text, m.protocol, m.conversation]),
      [
        [true, "first contact from rust", "v2", sent.conversation],
        [false, "dave answers", "v2", sent.conversation],
        [true, "rust again", "v2", sent.conversation],
      ],
    );
    assert.deepEqual((await convos[0].messages()).map((m) => m.content), ["first contact from rust", "dave answers", "rust again"]);
    // --protocol olm is refused for a peer with no installations of ours.
    await assert.rejects(rust.run(["send", daveWallet.address, "no olm", "--protocol", "olm"]));
  });

  test("xmtp stream receives a JS message sent after it started", { timeout: TEST_TIMEOUT }, async () => {
    const stream = await rust.stream();
    closers.push(() => stream.stop());
    await jsConvo.send("live from js");
    const line = await stream.next((l) => l.type === "message" && l.text === "live from js");
    assert.equal(lower(line.sender), lower(jsWallet.address));
    assert.equal(line.protocol, "v2");
    assert.equal(line.outgoing, false);

    // A conversation that a new JS user starts after the stream began reaches it too.
    const erinWallet = h.randomWallet();
    const erin = await h.jsClient(node, erinWallet);
    closers.push(() => erin.close());
    const erinConvo = await erin.conversations.newConversation(rust.address);
    await erinConvo.send("erin says hi");
    const fromErin = await stream.next((l) => l.type === "message" && l.text === "erin says hi");
    assert.equal(lower(fromErin.sender), lower(erinWallet.address));
    await stream.stop();
  });

  test("tampered messages from a JS peer are not shown", { timeout: TEST_TIMEOUT }, async () => {
    const before = incoming(await rust.run(["messages", jsWallet.address])).map((m) => m.text);

    // 1. A valid message's bytes with one ciphertext bit flipped.
    const prepared = await jsConvo.prepareMessage("tampered ciphertext");
    const env = prepared.messageEnvelope;
    const msg = message.Message.decode(env.message);
    const payload = msg.v2.ciphertext.aes256GcmHkdfSha256.payload;
    payload[payload.length >> 1] ^= 0x01;
    // 2. Encrypted with the conversation's key, but the signature covers other bytes.
    const wrongSig = await forgedSignatureMessage(js, jsConvo, "wrong signature");
    // 3. A valid message of one conversation, replayed on another conversation's topic.
    const replayed = (await jsConvo.prepareMessage("replayed elsewhere")).messageEnvelope.message;
    assert.notEqual(replyTopic, jsConvo.topic);
    await js.apiClient.publish([
      { contentTopic: env.contentTopic, message: message.Message.encode(msg).finish(), timestamp: new Date() },
      { contentTopic: jsConvo.topic, message: wrongSig, timestamp: new Date() },
      { contentTopic: replyTopic, message: replayed, timestamp: new Date() },
    ]);
    // 4. Encrypted with the conversation's key and validly signed, but by a third wallet that
    //    is not a party to the conversation.
    const mallory = await h.jsClient(node, h.randomWallet());
    closers.push(() => mallory.close());
    const thirdParty = await forgedSignatureMessage(js, jsConvo, "signed by a third wallet", mallory);
    await js.apiClient.publish([{ contentTopic: jsConvo.topic, message: thirdParty, timestamp: new Date() }]);
    // A valid message after them, so we know the Rust client read past them; it is built by the
    // same code as the forgeries (signed by the sender itself), so they differ only in the fault.
    const control = await forgedSignatureMessage(js, jsConvo, "after the tampered ones", js);
    await js.apiClient.publish([{ contentTopic: jsConvo.topic, message: control, timestamp: new Date() }]);

    const lines = await rust.run(["messages", jsWallet.address]);
    const texts = incoming(lines).map((m) => m.text);
    assert.deepEqual(texts, [...before, "after the tampered ones"]);
    // xmtp-js refuses them too.
    const jsTexts = (await jsConvo.messages()).map((m) => m.content);
    assert.ok(!jsTexts.includes("tampered ciphertext") && !jsTexts.includes("wrong signature"));
    assert.ok(!JSON.stringify(lines).includes("replayed elsewhere"));
  });

  test("a tampered invitation from a JS peer is refused", { timeout: TEST_TIMEOUT }, async () => {
    const frank = await h.jsClient(node, h.randomWallet());
    closers.push(() => frank.close());
    const recipient = await frank.getUserContact(rust.address);
    const createdNs = Long.fromString((BigInt(Date.now()) * 1000000n).toString(), true);
    const invite = await frank.keystore.createInvite({
      recipient: recipient instanceof SignedPublicKeyBundle ? recipient : SignedPublicKeyBundle.fromLegacyBundle(recipient),
      createdNs,
      context: { conversationId: "interop/tampered-invite", metadata: {} },
      consentProof: undefined,
    });
    const sealed = Buffer.from(invite.payload);
    sealed[sealed.length - 8] ^= 0x01; // inside the sealed invitation's AES-GCM ciphertext
    await frank.apiClient.publish([{ contentTopic: inviteTopic(rust.address), message: sealed, timestamp: new Date() }]);

    // Then a valid conversation from the same JS user.
    const convo = await frank.conversations.newConversation(rust.address, { conversationId: "interop/valid-invite", metadata: {} });
    await convo.send("valid invitation");

    const list = await rust.run(["list"]);
    const ids = list.filter((l) => l.type === "conversation").map((c) => c.id);
    assert.ok(ids.includes(convo.topic), `the valid conversation is listed: ${JSON.stringify(ids)}`);
    assert.ok(!ids.includes(invite.conversation.topic), "the tampered invitation's conversation is not");
    const lines = await rust.run(["messages", frank.address]);
    assert.deepEqual(
      lines.filter((l) => l.type === "message").map((m) => [m.conversation, m.text]),
      [[convo.topic, "valid invitation"]],
    );
  });
});

/** A user's V2 invite topic, as xmtp-js builds it (EIP-55 address). */
const inviteTopic = (address) => `/xmtp/0/invite-${getAddress(address)}/proto`;

/**
 * A V2 message built as ConversationV2.createMessage does, but signing a different payload, or
 * (with `signer`, another client) signed correctly by a third wallet's keys.
 */
async function forgedSignatureMessage(client, convo, text, signer) {
  const encode = (t) =>
    content.EncodedContent.encode({
      type: { authorityId: "xmtp.org", typeId: "text", versionMajor: 1, versionMinor: 0 },
      parameters: { encoding: "UTF-8" },
      content: new TextEncoder().encode(t),
    }).finish();
  const payload = encode(text);
  const headerBytes = message.MessageHeaderV2.encode({
    topic: convo.topic,
    createdNs: Long.fromString((BigInt(Date.now()) * 1000000n).toString(), true),
  }).finish();
  const signedPayload = signer ? payload : encode(`${text} (signed)`);
  const signedOver = createHash("sha256").update(headerBytes).update(signedPayload).digest();
  const by = signer ?? client;
  const signature = await by.keystore.signDigest({ digest: signedOver, prekeyIndex: 0, identityKey: undefined });
  const signed = content.SignedContent.encode({ payload, sender: by.signedPublicKeyBundle, signature }).finish();
  const { encrypted, senderHmac } = await convo.encryptMessage(signed, headerBytes);
  return message.Message.encode({ v1: undefined, v2: { headerBytes, ciphertext: encrypted, senderHmac, shouldPush: true } }).finish();
}
