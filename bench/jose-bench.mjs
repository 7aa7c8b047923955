#!/usr/bin/env node
// The quickstart's own verification stack, timed for scripts/bench.py (`make bench`):
// jose's jwtVerify against a createRemoteJWKSet key set, with the keys, tokens and options
// that the Python side uses. The key set is served from memory through jose's customFetch,
// so the numbers are verification, not network.
//
//   node bench/jose-bench.mjs CASES.json
//
// CASES.json, written by scripts/bench.py:
//   {"issuer": "...", "audience": "...", "algorithms": [...], "typ": "at+jwt",
//    "required_claims": [...], "jwks": {"keys": [...]}, "tokens": {"ES256": [...], ...}}
//
// Start-up verifies every token once (a wrong setup fails here, not in a number), warms up,
// then prints one line: {"ready": true, "node": ..., "jose": ..., "jwks_fetches": ...}.
// After that it answers each stdin line with one JSON line (bench/child.mjs's serve()):
//   JOSE ALG N     jwtVerify N times, cycling through ALG's tokens
//   SUBTLE ALG N   crypto.subtle.verify alone: the WebCrypto call jose awaits
//   SYNC ALG N     node:crypto.verify, synchronous, on the same keys and bytes
//                  each -> {"us": wall µs per operation, "cpu_us": process CPU µs, all threads}
//   INFO           -> {"node": ..., "jose": ..., "jwks_fetches": ...}
import { createPublicKey, verify as verifySync, webcrypto } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createRemoteJWKSet, customFetch, jwtVerify } from 'jose'
import { serve, stopwatch } from './child.mjs'

const WARMUP = 300 // verifies per algorithm before "ready": V8 has compiled the hot paths
const JOSE_VERSION = JSON.parse(
  readFileSync(createRequire(import.meta.url).resolve('jose/package.json'), 'utf8'),
).version

// WebCrypto parameters per JWS algorithm (RFC 7518 §3, RFC 8037), as jose passes them.
const WEBCRYPTO = {
  ES256: {
    import: { name: 'ECDSA', namedCurve: 'P-256' },
    verify: { name: 'ECDSA', hash: 'SHA-256' },
  },
  EdDSA: { import: { name: 'Ed25519' }, verify: { name: 'Ed25519' } },
  RS256: {
    import: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    verify: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
  },
}

// node:crypto.verify arguments per JWS algorithm: digest, and the JWS signature encoding.
const NODE_SYNC = {
  ES256: { digest: 'sha256', options: { dsaEncoding: 'ieee-p1363' } },
  EdDSA: { digest: null, options: {} },
  RS256: { digest: 'sha256', options: {} },
}

const cases = JSON.parse(readFileSync(process.argv[2], 'utf8'))

let jwksFetches = 0
const body = JSON.stringify(cases.jwks)
const jwks = createRemoteJWKSet(new URL(`${cases.issuer}/jwks.json`), {
  [customFetch]: async () => {
    jwksFetches += 1
    return new Response(body, { status: 200, headers: { 'content-type': 'application/json' } })
  },
})
const options = {
  issuer: cases.issuer,
  audience: cases.audience,
  algorithms: cases.algorithms,
  typ: cases.typ,
  requiredClaims: cases.required_claims,
}

// Per algorithm: its tokens, and for the floor measurements its key and pre-split bytes.
const prepared = new Map()
for (const [alg, tokens] of Object.entries(cases.tokens)) {
  const [header] = tokens[0].split('.')
  const { kid } = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'))
  const jwk = cases.jwks.keys.find((key) => key.kid === kid)
  const params = WEBCRYPTO[alg]
  prepared.set(alg, {
    tokens,
    signed: tokens.map(split),
    cryptoKey: await webcrypto.subtle.importKey('jwk', jwk, params.import, false, ['verify']),
    keyObject: createPublicKey({ key: jwk, format: 'jwk' }),
  })
  for (const token of tokens) await jwtVerify(token, jwks, options)
}

function split(token) {
  const end = token.lastIndexOf('.')
  return {
    data: Buffer.from(token.slice(0, end), 'ascii'),
    signature: Buffer.from(token.slice(end + 1), 'base64url'),
  }
}

function casesFor(alg) {
  const found = prepared.get(alg)
  if (!found) throw new Error(`no tokens for ${alg}`)
  return found
}

// Each timer runs n operations one after another (each awaited in turn, as one request after
// another would be) and returns the stopwatch's reading.
const timers = {
  async JOSE(alg, n) {
    const { tokens } = casesFor(alg)
    const watch = stopwatch()
    for (let i = 0; i < n; i++) await jwtVerify(tokens[i % tokens.length], jwks, options)
    return watch(n)
  },
  async SUBTLE(alg, n) {
    const { signed, cryptoKey } = casesFor(alg)
    const params = WEBCRYPTO[alg].verify
    const watch = stopwatch()
    for (let i = 0; i < n; i++) {
      const { data, signature } = signed[i % signed.length]
      if (!(await webcrypto.subtle.verify(params, cryptoKey, signature, data))) fail(alg)
    }
    return watch(n)
  },
  async SYNC(alg, n) {
    const { signed, keyObject } = casesFor(alg)
    const { digest, options: keyOptions } = NODE_SYNC[alg]
    const key = { key: keyObject, ...keyOptions }
    const watch = stopwatch()
    for (let i = 0; i < n; i++) {
      const { data, signature } = signed[i % signed.length]
      if (!verifySync(digest, data, key, signature)) fail(alg)
    }
    return watch(n)
  },
}

function fail(alg) {
  throw new Error(`${alg}: a signature did not verify`)
}

for (const alg of prepared.keys()) {
  for (const timer of Object.values(timers)) await timer(alg, WARMUP)
}

const info = () => ({ node: process.version, jose: JOSE_VERSION, jwks_fetches: jwksFetches })
await serve(timers, info)
