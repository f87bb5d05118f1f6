// Suite A: two xmtp-js clients through our node's JSON gateway (no authentication required).
"use strict";
const { jsToJsSuite } = require("../lib/js_suite.cjs");

jsToJsSuite("xmtp-js <-> xmtp-js through xmtp-node", []);
