// An independent authorization server for the interoperability tests: panva's oidc-provider 9
// on 127.0.0.1, issuing RFC 9068 JWT access tokens (typ at+jwt) by client_credentials, with
// DPoP (RFC 9449) binding when the client sends a proof.
//
//   node tests/interop/authorization_server.mjs [--port N] [--alg ES256] [--alg Ed25519] ...
//
// Our Worker can use it as AUTHPI_ISSUER_URL: the issuer is http://127.0.0.1:PORT (no trailing
// slash), the key set is at {issuer}/jwks.json and the token endpoint at {issuer}/token.
// Each --alg (ES256, EdDSA, Ed25519, RS256; default ES256) gets its own confidential client
// (client_secret_basic, client_credentials only) whose tokens are signed with that algorithm.
// Keys and secrets are made in memory at start and never written anywhere.
//
// stdout carries JSON lines only: one when ready ({issuer, audience, clients: [...]}) and one
// answer per command read from stdin ({command, ...}). Everything else (oidc-provider's
// notices included) goes to stderr, ending the start with "oidc-provider on {issuer}".
// Commands, one per line:
//   rotate   every client's tokens are signed from now on with its next key, which has been
//            published in the key set since the start (oidc-provider's key set is fixed when
//            the provider is built, so "publish first, then switch" is the only rotation).
//   kids     which key signs for each alg, and which is next.

import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

import { exportJWK, generateKeyPair } from 'jose';
import Provider, { errors } from 'oidc-provider';

// oidc-provider prints its notices with console.info, i.e. on stdout: keep stdout for JSON.
console.log = console.info = console.error;

const AUDIENCE = 'https://api.example.com';
const SCOPE = 'read:reports read:profile';
// The jose algorithm that makes a key for each token alg: one Ed25519 key type, two names.
const KEY_ALGS = { ES256: 'ES256', EdDSA: 'Ed25519', Ed25519: 'Ed25519', RS256: 'RS256' };

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    alg: { type: 'string', multiple: true, default: ['ES256'] },
    audience: { type: 'string', default: AUDIENCE },
  },
});
const algs = [...new Set(args.alg)];
for (const alg of algs) {
  if (!(alg in KEY_ALGS)) {
    console.error(`--alg ${alg}: one of ${Object.keys(KEY_ALGS).join(', ')}`);
    process.exit(2);
  }
}

// A private JWK with kid, alg and use: the alg pins the name oidc-provider signs with and
// publishes (a bare Ed25519 key would allow both EdDSA and Ed25519, published without alg).
async function signingJwk(alg, kid) {
  const { privateKey } = await generateKeyPair(KEY_ALGS[alg], { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
}

// Per alg: the key that signs now and the next one, both published from the start.
const signers = {};
const keys = [];
for (const alg of algs) {
  const name = alg.toLowerCase();
  keys.push(await signingJwk(alg, `${name}-1`), await signingJwk(alg, `${name}-2`));
  signers[alg] = { current: `${name}-1`, next: `${name}-2` };
}
const clients = algs.map((alg) => ({
  client_id: `interop-${alg.toLowerCase()}`,
  client_secret: randomBytes(24).toString('base64url'),
  alg,
}));
const algOfClient = Object.fromEntries(clients.map((c) => [c.client_id, c.alg]));

// Listen first: the issuer URL holds the port, and --port 0 picks a free one.
const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(args.port), '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: clients.map(({ client_id, client_secret }) => ({
    client_id,
    client_secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: SCOPE,
  })),
  scopes: SCOPE.split(' '), // what clients may be registered with
  clientDefaults: { id_token_signed_response_alg: algs[0] }, // RS256 by default, maybe absent
  jwks: { keys },
  routes: { jwks: '/jwks.json', token: '/token' },
  ttl: { ClientCredentials: 300 }, // seconds: a short-lived M2M access token
  features: {
    devInteractions: { enabled: false }, // no authorization endpoint in use: no login pages
    clientCredentials: { enabled: true },
    dPoP: { enabled: true }, // no nonceSecret: proofs need no server nonce
    resourceIndicators: {
      enabled: true,
      // A token request without `resource` is for our API, so every token is a JWT for it.
      defaultResource: () => args.audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator, client) => {
        if (resourceIndicator !== args.audience) throw new errors.InvalidTarget();
        const alg = algOfClient[client.clientId];
        return {
          scope: SCOPE,
          audience: resourceIndicator,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg, kid: signers[alg].current } },
        };
      },
    },
  },
});
provider.on('server_error', (ctx, error) => console.error('server_error', error));
provider.on('grant.error', (ctx, error) => console.error('grant.error', error.message));
server.on('request', provider.callback());

// One JSON line on stdout per event; never a token (none ever passes through this process's
// output), only the client credentials the caller needs.
const say = (data) => process.stdout.write(`${JSON.stringify(data)}\n`);
const kids = () => Object.fromEntries(algs.map((alg) => [alg, { ...signers[alg] }]));

createInterface({ input: process.stdin }).on('line', (line) => {
  const command = line.trim();
  if (command === 'rotate') {
    for (const alg of algs) {
      const { current, next } = signers[alg];
      if (next) signers[alg] = { current: next, next: null, retired: current };
    }
    say({ command, kids: kids() });
  } else if (command === 'kids') {
    say({ command, kids: kids() });
  } else if (command) {
    say({ command, error: 'unknown command' });
  }
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}

say({
  issuer,
  audience: args.audience,
  jwks_uri: `${issuer}/jwks.json`,
  token_endpoint: `${issuer}/token`,
  clients,
  kids: kids(),
});
// Last, on stderr, the line scripts/demo.py's Service waits for (" on http://…").
console.error(`oidc-provider on ${issuer} (${algs.join(', ')})`);
