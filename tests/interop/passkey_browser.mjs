// A real browser as the WebAuthn client for the passkey tests: Debian's Chromium, driven by
// playwright-core, with Chromium's virtual authenticator (CDP WebAuthn domain) standing in for
// a platform authenticator. Serves a blank page on http://localhost (a secure context, the
// relying party id "localhost") and answers one JSON line per request on stdin:
//   {"op": "create", "options": "<WebAuthn JSON from StartPasskeyRegistration>"}
//   {"op": "get", "options": "<WebAuthn JSON from a challenge>"}
// with {"ok": "<PublicKeyCredential JSON>"} or {"error": "..."}.
import { chromium } from 'playwright-core';
import http from 'node:http';
import readline from 'node:readline';

const server = http.createServer((_, response) => {
  response.writeHead(200, { 'content-type': 'text/html' });
  response.end('<!doctype html><title>Praxis passkey test</title>');
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://localhost:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.PRAXIS_TEST_CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await (await browser.newContext()).newPage();
await page.goto(`${origin}/`);
const cdp = await page.context().newCDPSession(page);
await cdp.send('WebAuthn.enable');
await cdp.send('WebAuthn.addVirtualAuthenticator', {
  options: {
    protocol: 'ctap2',
    transport: 'internal',
    hasResidentKey: true,
    hasUserVerification: true,
    isUserVerified: true,
    automaticPresenceSimulation: true,
  },
});

async function ceremony(op, options) {
  return page.evaluate(async ({ op, options }) => {
    const publicKey = JSON.parse(options).publicKey;
    if (op === 'create') {
      const parsed = PublicKeyCredential.parseCreationOptionsFromJSON(publicKey);
      const credential = await navigator.credentials.create({ publicKey: parsed });
      return JSON.stringify(credential.toJSON());
    }
    const parsed = PublicKeyCredential.parseRequestOptionsFromJSON(publicKey);
    const credential = await navigator.credentials.get({ publicKey: parsed });
    return JSON.stringify(credential.toJSON());
  }, { op, options });
}

console.log(JSON.stringify({ ready: origin }));
for await (const line of readline.createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  try {
    const { op, options } = JSON.parse(line);
    console.log(JSON.stringify({ ok: await ceremony(op, options) }));
  } catch (error) {
    console.log(JSON.stringify({ error: String(error) }));
  }
}
await browser.close();
server.close();
