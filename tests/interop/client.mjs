// An independent OAuth client for the interoperability tests: oauth4webapi 3, used the way a
// real client uses it. Discovery at the issuer, client_credentials with a DPoP (RFC 9449) key,
// then the Worker's protected routes with DPoP proofs, plus the refusals a Worker must give:
// a replayed proof, the bound token as Bearer, a proof for another URL, a missing or doubled
// proof, a missing scope; and a plain Bearer token (no DPoP at the token endpoint).
//
//   CLIENT_SECRET=… node tests/interop/client.mjs --issuer URL --client-id ID --worker URL
//                                                  [--proof-alg ES256|Ed25519]
//
// Prints one JSON document on stdout: the tokens' headers and claims that matter, and for each
// scenario the request (described: scheme, the proof's header and claims) and the Worker's
// response (status, www-authenticate, body). Tokens and proofs themselves stay in this process.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

import * as oauth from 'oauth4webapi';

// A failure prints its name and message only: oauth4webapi attaches response bodies (which
// may hold a token) to its errors, and Node would print them whole.
for (const event of ['uncaughtException', 'unhandledRejection']) {
  process.on(event, (error) => {
    console.error(`client.mjs: ${error?.name ?? 'Error'}: ${error?.message ?? error}`);
    process.exit(1);
  });
}

const { values: args } = parseArgs({
  options: {
    issuer: { type: 'string' },
    'client-id': { type: 'string' },
    worker: { type: 'string' },
    'proof-alg': { type: 'string', default: 'ES256' },
  },
});
const secret = process.env.CLIENT_SECRET; // not a flag: flags show in ps
if (!args.issuer || !args['client-id'] || !args.worker || !secret) {
  console.error('usage: CLIENT_SECRET=… client.mjs --issuer URL --client-id ID --worker URL');
  process.exit(2);
}
// WebCrypto parameters for the proof key; oauth4webapi names the proofs' alg after the key.
const PROOF_KEYS = { ES256: { name: 'ECDSA', namedCurve: 'P-256' }, Ed25519: { name: 'Ed25519' } };
if (!(args['proof-alg'] in PROOF_KEYS)) {
  console.error(`--proof-alg: one of ${Object.keys(PROOF_KEYS).join(', ')}`);
  process.exit(2);
}

// Plain http on 127.0.0.1 for both servers: oauth4webapi refuses http unless told otherwise.
const insecure = { [oauth.allowInsecureRequests]: true };

// Every request oauth4webapi makes goes through here and is recorded with its exact headers,
// so that it can be replayed. rewrite: where it really goes; unsent: recorded, answered 204.
const sent = [];
function capturingFetch(rewrite = (url) => url, unsent = false) {
  return (url, init) => {
    const target = rewrite(url);
    sent.push({ url: target, method: init.method, headers: { ...init.headers } });
    return unsent ? Promise.resolve(new Response(null, { status: 204 })) : fetch(target, init);
  };
}

const b64json = (segment) => JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
const sha256 = async (text) => {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Buffer.from(digest).toString('base64url');
};

// A token's header and the claims that matter here, decoded without verifying: the Worker
// verifies. jkt: the proof key's RFC 7638 thumbprint, for cnf.jkt.
function describeToken(token, jkt) {
  const [header, claims] = token.split('.').slice(0, 2).map(b64json);
  return {
    header: { typ: header.typ, alg: header.alg, kid: header.kid },
    iss: claims.iss,
    aud: claims.aud,
    scope: claims.scope,
    client_id: claims.client_id,
    cnf_jkt_present: typeof claims.cnf?.jkt === 'string',
    cnf_jkt_matches_proof_key: claims.cnf?.jkt === jkt,
  };
}

// A request as sent: the authorization scheme, and the first DPoP proof's header and claims.
async function describeRequest({ url, method, headers }, token) {
  const request = { method, url, scheme: headers.authorization?.split(' ')[0] ?? null, dpop: null };
  if (headers.dpop !== undefined) {
    const proofs = headers.dpop.split(',').map((proof) => proof.trim());
    const [header, claims] = proofs[0].split('.').slice(0, 2).map(b64json);
    const { kty, crv } = header.jwk ?? {};
    request.dpop = {
      count: proofs.length,
      header: { typ: header.typ, alg: header.alg, jwk: { kty, crv } },
      claims: {
        htm: claims.htm,
        htu: claims.htu,
        iat: claims.iat,
        jti: claims.jti,
        nonce: claims.nonce ?? null,
        ath_matches_token: token !== undefined && claims.ath === (await sha256(token)),
      },
    };
  }
  return request;
}

async function describeResponse(response) {
  const text = await response.text();
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return {
    status: response.status,
    www_authenticate: response.headers.get('www-authenticate'),
    dpop_nonce: response.headers.get('dpop-nonce'),
    body,
  };
}

const issuer = new URL(args.issuer);
const discovery = await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure });
const as = await oauth.processDiscoveryResponse(issuer, discovery);
const client = { client_id: args['client-id'] };
const clientAuth = oauth.ClientSecretBasic(secret);

// The proof key: the private half not extractable, as a client should keep it.
const algorithm = PROOF_KEYS[args['proof-alg']];
const keyPair = await crypto.subtle.generateKey(algorithm, false, ['sign', 'verify']);
const dpop = oauth.DPoP(client, keyPair);
const jkt = await dpop.calculateThumbprint();

// client_credentials, with a DPoP proof when dpopHandle is given; one retry on use_dpop_nonce
// as oauth4webapi's documentation has it (oidc-provider without a nonceSecret never asks).
async function getToken(scope, dpopHandle) {
  const options = { ...insecure, DPoP: dpopHandle, [oauth.customFetch]: capturingFetch() };
  for (let attempt = 1; ; attempt++) {
    const response = await oauth.clientCredentialsGrantRequest(
      as, client, clientAuth, { scope }, options,
    );
    try {
      const result = await oauth.processClientCredentialsResponse(as, client, response);
      return { ...result, sent: sent.at(-1) };
    } catch (error) {
      if (attempt > 1 || !dpopHandle || !oauth.isDPoPNonceError(error)) throw error;
    }
  }
}

// A GET through oauth4webapi; a challenge (401/403) is an answer here, not a failure.
// sendTo: the request and its proof are made for path, then sent to sendTo instead.
async function resource(token, path, { dpopHandle, sendTo, unsent } = {}) {
  const url = new URL(path, args.worker);
  const rewrite = sendTo ? () => new URL(sendTo, args.worker).href : undefined;
  const options = {
    ...insecure,
    DPoP: dpopHandle,
    [oauth.customFetch]: capturingFetch(rewrite, unsent),
  };
  let response;
  try {
    const [headers, body] = [undefined, undefined];
    response = await oauth.protectedResourceRequest(token, 'GET', url, headers, body, options);
  } catch (error) {
    if (!(error instanceof oauth.WWWAuthenticateChallengeError)) throw error;
    response = error.response;
  }
  const request = sent.at(-1);
  return {
    request: await describeRequest(request, token),
    response: await describeResponse(response),
    sent: request,
  };
}

// A recorded request sent again with plain fetch: its headers verbatim, or the ones given.
async function replay(recorded, token, headers = recorded.headers) {
  const request = { ...recorded, headers };
  const { url, method } = request;
  const response = await fetch(url, { method, headers, redirect: 'manual' });
  return {
    request: await describeRequest(request, token),
    response: await describeResponse(response),
  };
}

const bound = await getToken('read:reports', dpop);
const boundNoScope = await getToken('read:profile', dpop);
const bearer = await getToken('read:reports');
const describe = (response) => ({
  token_type: response.token_type,
  ...describeToken(response.access_token, jkt),
});
const tokens = {
  dpop: describe(bound),
  dpop_without_read_reports: describe(boundNoScope),
  bearer: describe(bearer),
};

const token = bound.access_token;
const scenarios = {};
const shown = ({ sent: _, ...described }) => described;
const me = await resource(token, '/me', { dpopHandle: dpop });
scenarios.dpop_me = shown(me);
scenarios.dpop_reports = shown(await resource(token, '/reports', { dpopHandle: dpop }));
scenarios.dpop_replayed = await replay(me.sent, token);
scenarios.dpop_token_as_bearer = await replay(me.sent, token, { authorization: `Bearer ${token}` });
scenarios.dpop_proof_for_other_url = shown(
  await resource(token, '/me', { dpopHandle: dpop, sendTo: '/reports' }),
);
scenarios.dpop_scheme_without_proof = await replay(me.sent, token, {
  authorization: `DPoP ${token}`,
});
{
  // Two fresh proofs for /me, each valid alone and never sent: fetch sends them as one
  // comma-joined dpop header (as a proxy may join two header lines).
  const first = await resource(token, '/me', { dpopHandle: dpop, unsent: true });
  const second = await resource(token, '/me', { dpopHandle: dpop, unsent: true });
  const headers = new Headers({ authorization: `DPoP ${token}` });
  headers.append('dpop', first.sent.headers.dpop);
  headers.append('dpop', second.sent.headers.dpop);
  scenarios.dpop_two_proofs = await replay(me.sent, token, Object.fromEntries(headers));
}
scenarios.dpop_without_scope_reports = shown(
  await resource(boundNoScope.access_token, '/reports', { dpopHandle: dpop }),
);
scenarios.bearer_me = shown(await resource(bearer.access_token, '/me'));
scenarios.bearer_reports = shown(await resource(bearer.access_token, '/reports'));

const require = createRequire(import.meta.url);
const document = {
  node: process.version,
  oauth4webapi: JSON.parse(readFileSync(require.resolve('oauth4webapi/package.json'))).version,
  issuer: as.issuer,
  worker: args.worker,
  proof_key: { alg: args['proof-alg'], jkt },
  token_request_proof: (await describeRequest(bound.sent)).dpop,
  tokens,
  scenarios,
};
process.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
