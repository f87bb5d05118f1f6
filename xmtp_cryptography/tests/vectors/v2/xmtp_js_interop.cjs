// Interop vectors between @xmtp/xmtp-js@13.0.4 and xmtp_cryptography::v2.
//
//   node xmtp_js_interop.cjs generate > xmtp_js_13.json   # xmtp-js writes; our tests read
//   node xmtp_js_interop.cjs verify own.json               # xmtp-js reads what our code wrote
//
// Run from a folder where `npm install @xmtp/xmtp-js@13.0.4` was done (NODE_PATH may point at its
// node_modules). No network is used: the API client is a stand-in that records publishes and
// replays stored envelopes. Wallet keys are fixed, so identities are reproducible; the SDK's
// encryption uses fresh randomness, so the output differs run to run but always interoperates.
// CommonJS, because the ESM build of @xmtp/proto uses extensionless imports that Node rejects.
const {
  InMemoryKeystore,
  InMemoryPersistence,
  KeyGeneratorKeystoreProvider,
  NetworkKeystoreProvider,
  MessageV1,
  PrivateKeyBundleV1,
  PublicKeyBundle,
  Signature,
  SignedPublicKey,
  SignedPublicKeyBundle,
  decodeContactBundle,
} = require("@xmtp/xmtp-js");
const { content, message, privateKey } = require("@xmtp/proto");
const { privateKeyToAccount } = require("viem/accounts");
const Long = require("long");
const { createHash } = require("node:crypto");
const { readFileSync } = require("node:fs");

const hex = (b) => Buffer.from(b).toString("hex");
const unhex = (s) => new Uint8Array(Buffer.from(s, "hex"));
const sha256 = (b) => new Uint8Array(createHash("sha256").update(b).digest());

function signer(keyByte) {
  const account = privateKeyToAccount(`0x${keyByte.repeat(32)}`);
  return {
    getAddress: async () => account.address,
    signMessage: async (msg) => account.signMessage({ message: msg }),
  };
}

function fakeApi(stored = []) {
  const published = [];
  return {
    published,
    publish: async (envs) => {
      published.push(...envs);
      return [];
    },
    setAuthenticator: () => {},
    async *queryIterator() {
      for (const message of stored) yield { message, timestampNs: "1" };
    },
  };
}

const opts = { env: "local", persistConversations: false };

function textContent(text) {
  return content.EncodedContent.encode({
    type: { authorityId: "xmtp.org", typeId: "text", versionMajor: 1, versionMinor: 0 },
    parameters: { encoding: "UTF-8" },
    content: new TextEncoder().encode(text),
  }).finish();
}

async function generate() {
  const aliceWallet = signer("c1");
  const daveWallet = signer("d1");
  const aliceApi = fakeApi();
  const alice = await new KeyGeneratorKeystoreProvider().newKeystore(opts, aliceApi, aliceWallet);
  const dave = await new KeyGeneratorKeystoreProvider().newKeystore(opts, fakeApi(), daveWallet);
  const aliceKeys = await alice.getPrivateKeyBundle();
  const daveKeys = await dave.getPrivateKeyBundle();
  const daveSigned = SignedPublicKeyBundle.fromLegacyBundle(await dave.getPublicKeyBundle());
  const aliceSigned = SignedPublicKeyBundle.fromLegacyBundle(await alice.getPublicKeyBundle());

  const createdNs = BigInt(Date.now()) * 1000000n;
  const invite = await alice.createInvite({
    recipient: daveSigned,
    createdNs: Long.fromString(createdNs.toString(), true),
    context: { conversationId: "xmtp-js/interop", metadata: {} },
    consentProof: undefined,
  });
  const topic = invite.conversation.topic;

  // A V2 message the way ConversationV2.createMessage builds it.
  const sentNs = Long.fromString((createdNs + 1000n).toString(), true);
  const payload = textContent("hello from xmtp-js");
  const headerBytes = message.MessageHeaderV2.encode({ topic, createdNs: sentNs }).finish();
  const digest = sha256(Buffer.concat([headerBytes, payload]));
  const signature = await alice.signDigest({ digest, prekeyIndex: 0, identityKey: false });
  const signedBytes = content.SignedContent.encode({ payload, sender: aliceSigned, signature }).finish();
  const { responses } = await alice.encryptV2({ requests: [{ payload: signedBytes, headerBytes, contentTopic: topic }] });
  const { encrypted, senderHmac } = responses[0].result;
  const v2 = message.Message.encode({ v1: undefined, v2: { headerBytes, ciphertext: encrypted, senderHmac, shouldPush: true } }).finish();

  const v1 = await MessageV1.encode(alice, textContent("v1 from xmtp-js"), await alice.getPublicKeyBundle(), await dave.getPublicKeyBundle(), new Date(Number(createdNs / 1000000n)));
  const token = await alice.createAuthToken({ timestampNs: sentNs });

  const out = {
    _comment: "Written by @xmtp/xmtp-js@13.0.4 through tests/vectors/v2/xmtp_js_interop.cjs (generate). Wallet keys: 32 bytes of 0xc1 (alice) and 0xd1 (dave).",
    alice_address: await aliceWallet.getAddress(),
    dave_address: await daveWallet.getAddress(),
    alice_private_key_bundle: hex(aliceKeys.encode()),
    dave_private_key_bundle: hex(daveKeys.encode()),
    alice_privatestore_topic: aliceApi.published[0].contentTopic,
    alice_privatestore_message: hex(aliceApi.published[0].message),
    invitation: hex(invite.payload),
    invitation_created_ns: createdNs.toString(),
    conversation_topic: topic,
    message_v2: hex(v2),
    message_v2_text: "hello from xmtp-js",
    message_v1: hex(v1.toBytes()),
    message_v1_text: "v1 from xmtp-js",
    token: hex(token.toBytes()),
    token_created_ns: sentNs.toString(),
  };
  console.log(JSON.stringify(out, null, 2));
}

async function verify(path) {
  const v = JSON.parse(readFileSync(path, "utf8"));
  const check = (name, ok) => {
    console.log(`${ok ? "ok  " : "FAIL"} ${name}`);
    if (!ok) process.exitCode = 1;
  };
  // 1. Our privatestore bundle, loaded by xmtp-js with alice's wallet (0xa1).
  const loaded = await new NetworkKeystoreProvider().newKeystore(opts, fakeApi([unhex(v.encrypted_private_key_bundle)]), signer("a1"));
  check("xmtp-js recovers our privatestore bundle", (await loaded.getAccountAddress()) === v.alice_address);

  // 2. Our sealed invitation, saved by bob's xmtp-js keystore.
  const bobKeys = new PrivateKeyBundleV1(privateKey.PrivateKeyBundle.decode(unhex(v.bob_private_key_bundle)).v1);
  const bob = await InMemoryKeystore.create(bobKeys, InMemoryPersistence.create());
  const saved = await bob.saveInvites({ requests: [{ payload: unhex(v.sealed_invitation), timestampNs: Long.fromString(String(v.sealed_created_ns), true), contentTopic: "" }] });
  const convo = saved.responses[0].result?.conversation;
  check("xmtp-js opens our sealed invitation", convo?.topic === v.invitation_topic && convo?.peerAddress === v.alice_address);

  // 3. Our V2 message, decrypted by bob's keystore and verified as ConversationV2 does.
  const m = message.Message.decode(unhex(v.message_v2)).v2;
  const dec = await bob.decryptV2({ requests: [{ payload: m.ciphertext, headerBytes: m.headerBytes, contentTopic: v.invitation_topic }] });
  const signed = content.SignedContent.decode(dec.responses[0].result.decrypted);
  const digest = sha256(Buffer.concat([m.headerBytes, signed.payload]));
  const sigOk = new SignedPublicKey(signed.sender.preKey).verify(new Signature(signed.signature), digest);
  const preOk = await new SignedPublicKey(signed.sender.identityKey).verifyKey(new SignedPublicKey(signed.sender.preKey));
  const sender = await new SignedPublicKeyBundle(signed.sender).walletSignatureAddress();
  check("xmtp-js decrypts and verifies our V2 message", sigOk && preOk && sender === v.bob_address && Buffer.from(signed.payload).toString() === "hello from bob");

  // 4. Our V1 message, read by bob's keystore.
  const v1 = await MessageV1.fromBytes(unhex(v.message_v1));
  const v1dec = await bob.decryptV1({ requests: [{ payload: v1.ciphertext, peerKeys: v1.header.sender, headerBytes: v1.headerBytes, isSender: false }] });
  check("xmtp-js decrypts our V1 message", v1.senderAddress === v.alice_address && Buffer.from(v1dec.responses[0].result.decrypted).toString() === "hello from alice");

  // 5. Our contact bundles.
  const c1 = decodeContactBundle(unhex(v.alice_contact_v1));
  const c2 = decodeContactBundle(unhex(v.alice_contact_v2));
  check("xmtp-js reads our contact bundles", c1 instanceof PublicKeyBundle && c1.walletSignatureAddress() === v.alice_address && (await c2.walletSignatureAddress()) === v.alice_address);
}

async function main() {
  const [mode, path] = process.argv.slice(2);
  if (mode === "generate") await generate();
  else if (mode === "verify") await verify(path);
  else {
    console.error("usage: node xmtp_js_interop.cjs generate | verify <own.json>");
    process.exit(2);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
