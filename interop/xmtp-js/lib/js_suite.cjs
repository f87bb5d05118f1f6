// Suite A: two (three) xmtp-js clients talking through our node's JSON gateway. Defined as a
// function so that it runs against a node with and without --require-auth.
"use strict";

const { describe, test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const h = require("./harness.cjs");

const TEST_TIMEOUT = 60_000;

/** Registers suite A's tests, against a node started with `nodeArgs`. */
function jsToJsSuite(label, nodeArgs) {
  describe(label, { timeout: 5 * TEST_TIMEOUT }, () => {
    let node;
    let aliceWallet;
    let bobWallet;
    let alice;
    let bob;
    let aliceConvo;
    let bobConvo;
    const streams = [];

    before(async () => {
      node = await h.startNode({ extraArgs: nodeArgs });
      aliceWallet = h.randomWallet();
      bobWallet = h.randomWallet();
    });

    after(async () => {
      for (const s of streams) await s.return();
      await alice?.close();
      await bob?.close();
      await node?.stop();
    });

    test("clients create identities and find each other's contact bundles", { timeout: TEST_TIMEOUT }, async () => {
      alice = await h.jsClient(node, aliceWallet);
      bob = await h.jsClient(node, bobWallet);
      assert.equal(alice.address, aliceWallet.address);
      assert.equal(bob.address, bobWallet.address);
      assert.match(h.jsIdentityKeyHex(alice), /^04[0-9a-f]{128}$/);
      assert.equal(await alice.canMessage(bobWallet.address), true);
      assert.equal(await bob.canMessage(aliceWallet.address), true);
      assert.equal(await alice.canMessage(h.randomWallet().address), false);
      // The contact bundle bob fetches is alice's, signed by her wallet.
      const contact = await bob.getUserContact(aliceWallet.address);
      assert.ok(contact, "alice's contact bundle");
      assert.equal(await contact.walletSignatureAddress(), aliceWallet.address);
    });

    test("alice starts a conversation; bob lists it and reads her messages", { timeout: TEST_TIMEOUT }, async () => {
      aliceConvo = await alice.conversations.newConversation(bobWallet.address, {
        conversationId: "interop/suite-a",
        metadata: { suite: "a" },
      });
      assert.equal(aliceConvo.peerAddress, bobWallet.address);
      const first = await aliceConvo.send("hello bob");
      assert.equal(first.content, "hello bob");
      await aliceConvo.send("how are you?");

      const convos = await bob.conversations.list();
      assert.equal(convos.length, 1);
      bobConvo = convos[0];
      assert.equal(bobConvo.peerAddress, aliceWallet.address);
      assert.equal(bobConvo.topic, aliceConvo.topic);
      assert.equal(bobConvo.context?.conversationId, "interop/suite-a");
      assert.deepEqual(bobConvo.context?.metadata, { suite: "a" });

      const messages = await bobConvo.messages();
      assert.deepEqual(
        messages.map((m) => [m.senderAddress, m.content]),
        [
          [aliceWallet.address, "hello bob"],
          [aliceWallet.address, "how are you?"],
        ],
      );
      assert.equal(messages[0].id, first.id);
    });

    test("bob replies; both read the whole conversation in order", { timeout: TEST_TIMEOUT }, async () => {
      await bobConvo.send("fine, thanks");
      const expected = [
        [aliceWallet.address, "hello bob"],
        [aliceWallet.address, "how are you?"],
        [bobWallet.address, "fine, thanks"],
      ];
      for (const convo of [aliceConvo, bobConvo]) {
        const messages = await convo.messages();
        assert.deepEqual(messages.map((m) => [m.senderAddress, m.content]), expected);
      }
      // Newest first, with a limit: the node's paging and sort direction.
      const latest = await aliceConvo.messages({ limit: 1, direction: 2 /* SORT_DIRECTION_DESCENDING */ });
      assert.deepEqual(latest.map((m) => m.content), ["fine, thanks"]);
    });

    test("streams opened before a message is sent receive it", { timeout: TEST_TIMEOUT }, async () => {
      const base = await h.subscriberCount(node);
      const bobStream = await bobConvo.streamMessages();
      const aliceStream = await aliceConvo.streamMessages();
      const bobAll = await bob.conversations.streamAllMessages();
      streams.push(bobStream, aliceStream, bobAll);
      // The generator subscribes when first pulled; start pulling, then wait for the node to
      // count all three subscriptions before sending.
      const bobAllNext = h.take(bobAll, 1);
      await h.waitForSubscribers(node, base + 3);

      await aliceConvo.send("streamed to bob");
      const [viaConvo] = await h.take(bobStream, 1);
      const [viaAll] = await bobAllNext;
      for (const m of [viaConvo, viaAll]) {
        assert.equal(m.content, "streamed to bob");
        assert.equal(m.senderAddress, aliceWallet.address);
        assert.equal(m.conversation.topic, aliceConvo.topic);
      }
      const [own] = await h.take(aliceStream, 1);
      assert.equal(own.content, "streamed to bob");

      await bobConvo.send("streamed to alice");
      const [reply] = await h.take(aliceStream, 1);
      assert.equal(reply.content, "streamed to alice");
      assert.equal(reply.senderAddress, bobWallet.address);
    });

    test("a new conversation reaches a conversation stream", { timeout: TEST_TIMEOUT }, async () => {
      const carolWallet = h.randomWallet();
      const carol = await h.jsClient(node, carolWallet);
      try {
        const base = await h.subscriberCount(node);
        const newConvos = await bob.conversations.stream();
        streams.push(newConvos);
        await h.waitForSubscribers(node, base + 1);
        const carolConvo = await carol.conversations.newConversation(bobWallet.address);
        await carolConvo.send("hi bob, it's carol");
        const [seen] = await h.take(newConvos, 1);
        assert.equal(seen.peerAddress, carolWallet.address);
        assert.equal(seen.topic, carolConvo.topic);
        const messages = await seen.messages();
        assert.deepEqual(messages.map((m) => [m.senderAddress, m.content]), [[carolWallet.address, "hi bob, it's carol"]]);
        assert.equal((await bob.conversations.list()).length, 2);
      } finally {
        await carol.close();
      }
    });
  });
}

module.exports = { jsToJsSuite, TEST_TIMEOUT };
