#!/usr/bin/env node
// Two versions of the Worker under the npm `pyodide`, side by side in this one process, for
// scripts/bench_ab.py: each booted and called exactly as the Pyodide stage does
// (tests/pyodide/host.mjs), their requests alternating, so the drift of a shared machine falls
// on both alike.
//
//   node bench/pyodide-ab.mjs MANIFEST_A.json MANIFEST_B.json CASES.json ROUNDS BATCH
//
// Each manifest mounts its own revision's files (tests/pyodide/bench_probes.py among them);
// CASES.json, written by scripts/bench_ab.py:
//   {"origin", "env", "cached_tokens": [...], "requests": {NAME: {path, headers, status}}}
// After a warm-up, each round sends BATCH requests of each kind to A and to B (the kinds in
// reverse order and B first every other round), each with its own JS Request made before the
// clock starts, each checked for its status. Prints one JSON line:
//   {"A": {NAME: {"us": [...], "cpu_us": [...]}}, "B": {...}}: per round, per request
import { readFileSync } from 'node:fs'
import { bootWorker, exitOnUncaught, workerFetch, workerRequest } from '../tests/pyodide/host.mjs'
import { stopwatch } from './child.mjs'

const WARMUP = 300 // per request kind and Worker: the hot paths are compiled before timing

exitOnUncaught('pyodide-ab')
const [manifestA, manifestB, casesFile, rounds, batch] = process.argv.slice(2)
const cases = JSON.parse(readFileSync(casesFile, 'utf8'))
const names = Object.keys(cases.requests)

async function boot(manifestFile) {
  const worker = await bootWorker(JSON.parse(readFileSync(manifestFile, 'utf8')), () => {})
  const probes = worker.pyodide.pyimport('bench_probes')
  const env = worker.pyodide.toPy(cases.env)
  for (const token of cases.cached_tokens) probes.prime(env, token)
  return worker
}

async function time(worker, name, n) {
  const { path, headers, status } = cases.requests[name]
  const requests = Array.from({ length: n }, () =>
    workerRequest(cases.origin + path, 'GET', headers),
  )
  const watch = stopwatch()
  for (const request of requests) {
    const response = await workerFetch(worker, request, cases.env)
    if (response.status !== status) throw new Error(`${name}: ${response.status}, not ${status}`)
  }
  return watch(n)
}

const workers = { A: await boot(manifestA), B: await boot(manifestB) }
const samples = {}
for (const [side, worker] of Object.entries(workers)) {
  samples[side] = Object.fromEntries(names.map((name) => [name, { us: [], cpu_us: [] }]))
  for (const name of names) await time(worker, name, WARMUP)
}
for (let round = 0; round < Number(rounds); round++) {
  const kinds = round % 2 ? [...names].reverse() : names
  const sides = (round >> 1) % 2 ? ['B', 'A'] : ['A', 'B']
  for (const name of kinds) {
    for (const side of sides) {
      const timing = await time(workers[side], name, Number(batch))
      samples[side][name].us.push(timing.us)
      samples[side][name].cpu_us.push(timing.cpu_us)
    }
  }
}
process.stdout.write(`${JSON.stringify(samples)}\n`)
