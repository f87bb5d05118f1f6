// Decrypt and verify a corpus of XMTP V2 messages with @xmtp/xmtp-js 13.0.4, the way its client reads
// a conversation, beside our reader (xmtp_cryptography/benches/v2_decrypt.rs) on the same bytes.
//
//   cargo run -p xmtp_cryptography --release --example v2_corpus -- corpus.json   # 10,000 messages
//   node bench/v2_decrypt.cjs corpus.json [--runs 3] [--mode both|stream|list] [--json out.json]
//
// The reader (bob) is a real xmtp-js `Client`, made with `Client.create` from the corpus's private
// key bundle (`privateKeyOverride`) over an in-memory stand-in for the network API (no network, no
// contact publishing). It lists its conversations (`client.conversations.list()`, which opens the
// sealed invitation in its keystore) and reads the conversation with xmtp-js's own code:
//
// - stream: `ConversationV2.decodeMessage(envelope)` for each message in turn, as `streamMessages`
//   does: processEnvelope (Message and header decode, topic check) -> keystore.decryptV2
//   (HKDF-SHA256 + AES-256-GCM) -> SignedContent decode -> validatePrekeys (pre-key signed by the
//   identity key) -> the sender's pre-key signature over header and payload -> the sender's wallet
//   address recovered from the identity key's signature -> decodeContent (xmtp.org/text).
// - list: `ConversationV2.messages()`, which queries the topic and decrypts every message in one
//   batched keystore.decryptV2 call, then the same verification per message.
//
// Before timing, every tampered message of the corpus must throw in decodeMessage, and after each
// run every decoded text and sender address is compared with the corpus. Reports the median of
// the runs (after one untimed warm-up run of each mode on 1,000 messages).
// CommonJS, because the ESM build of @xmtp/proto uses extensionless imports that Node rejects.
const { Client, ConversationV2 } = require("@xmtp/xmtp-js");
const { readFileSync, writeFileSync } = require("node:fs");
const { performance } = require("node:perf_hooks");

const unhex = (s) => new Uint8Array(Buffer.from(s, "hex"));

// The network API, in memory: envelopes by topic, oldest first. Publishes are kept.
function memoryApi(envelopes) {
  const byTopic = (topic) => envelopes.filter((e) => e.contentTopic === topic);
  return {
    query: async ({ contentTopic }, { limit } = {}) => byTopic(contentTopic).slice(0, limit || undefined),
    async *queryIterator({ contentTopic }) {
      for (const env of byTopic(contentTopic)) yield env;
    },
    async *queryIteratePages({ contentTopic }) {
      yield byTopic(contentTopic);
    },
    batchQuery: async (queries) => queries.map((q) => byTopic(q.contentTopic)),
    publish: async (envs) => {
      for (const e of envs) envelopes.push({ contentTopic: e.contentTopic, message: e.message, timestampNs: "0" });
      return {};
    },
    subscribe: () => ({ unsubscribe: async () => {} }),
    setAuthenticator: () => {},
  };
}

function parseArgs(argv) {
  const out = { path: undefined, runs: 3, mode: "both", json: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--runs") out.runs = Number(argv[++i]);
    else if (a === "--mode") out.mode = argv[++i];
    else if (a === "--json") out.json = argv[++i];
    else if (!out.path) out.path = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  if (!out.path || !(out.runs >= 1) || !["both", "stream", "list"].includes(out.mode)) {
    console.error("usage: node bench/v2_decrypt.cjs CORPUS.json [--runs N] [--mode both|stream|list] [--json OUT]");
    process.exit(2);
  }
  return out;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const corpus = JSON.parse(readFileSync(args.path, "utf8"));
  if (corpus.format !== "xmtp-v2-corpus/1") throw new Error(`unknown corpus format ${corpus.format}`);
  const reader = corpus.parties[corpus.reader];
  const messages = corpus.messages.map((m) => ({
    env: { contentTopic: corpus.topic, message: unhex(m.bytes), timestampNs: m.sent_ns },
    sender: corpus.parties[m.sender].address,
    text: m.text,
  }));
  const n = messages.length;

  // The reader's network: the sealed invitation on its invite topic, the conversation on its topic.
  const envelopes = [
    {
      contentTopic: `/xmtp/0/invite-${reader.address}/proto`,
      message: unhex(corpus.sealed_invitation),
      timestampNs: corpus.sealed_invitation_created_ns,
    },
    ...messages.map((m) => m.env),
  ];
  const client = await Client.create(null, {
    env: "local",
    privateKeyOverride: unhex(corpus.reader_private_key_bundle),
    apiClientFactory: () => memoryApi(envelopes),
    skipContactPublishing: true,
    persistConversations: false,
  });
  if (client.address !== reader.address) throw new Error(`reader is ${client.address}, expected ${reader.address}`);
  const convos = await client.conversations.list();
  const convo = convos.find((c) => c.topic === corpus.topic);
  if (!(convo instanceof ConversationV2)) throw new Error("the invitation did not open into a V2 conversation");

  // Really verifies: every tampered message is refused.
  for (const t of corpus.tampered) {
    const env = { contentTopic: corpus.topic, message: unhex(t.bytes), timestampNs: t.sent_ns };
    let refused;
    try {
      await convo.decodeMessage(env);
    } catch (e) {
      refused = e;
    }
    if (!refused) throw new Error(`xmtp-js accepted a tampered message: ${t.kind}`);
    console.error(`refused (${t.kind}): ${refused.message ?? refused}`);
  }

  // Really decrypts: every text and sender as written.
  const check = (decoded, expected) => {
    if (decoded.length !== expected.length) throw new Error(`decoded ${decoded.length} of ${expected.length} messages`);
    for (let i = 0; i < expected.length; i++) {
      const d = decoded[i];
      if (d.content !== expected[i].text || d.senderAddress !== expected[i].sender || d.error) {
        throw new Error(`message ${i} decoded wrong: ${JSON.stringify({ content: d.content, sender: d.senderAddress })}`);
      }
    }
  };

  const modes = {
    // One message at a time, as a stream delivers them.
    stream: async (subset) => {
      const out = [];
      for (const m of subset) out.push(await convo.decodeMessage(m.env));
      return out;
    },
    // The whole conversation listed at once (query, then one batched decryptV2).
    list: async (subset) => convo.messages(subset.length === n ? undefined : { limit: subset.length }),
  };
  const chosen = args.mode === "both" ? ["stream", "list"] : [args.mode];
  const warm = messages.slice(0, Math.min(1000, n));
  for (const mode of chosen) check(await modes[mode](warm), warm);

  const results = {};
  for (const mode of chosen) {
    const times = [];
    for (let r = 0; r < args.runs; r++) {
      const t0 = performance.now();
      const decoded = await modes[mode](messages);
      const secs = (performance.now() - t0) / 1000;
      check(decoded, messages);
      times.push(secs);
      console.error(`xmtp-js ${mode} run ${r + 1}/${args.runs}: ${n} messages in ${secs.toFixed(3)} s (${(n / secs).toFixed(0)} msgs/s)`);
    }
    const med = median(times);
    results[mode] = { runs: times, median_s: med, msgs_per_s: n / med };
  }
  for (const [mode, r] of Object.entries(results)) {
    console.log(`xmtp-js 13.0.4 ${mode}: ${n} messages, median ${r.median_s.toFixed(3)} s over ${r.runs.length} runs = ${r.msgs_per_s.toFixed(0)} msgs/s`);
  }
  if (args.json) {
    writeFileSync(args.json, JSON.stringify({ node: process.version, messages: n, results }, null, 2));
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
