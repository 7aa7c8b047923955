#!/usr/bin/env node
// src/entry.py under the npm `pyodide` (the runtime's Python), timed for scripts/bench.py
// (`make bench`): requests through Default.fetch made exactly as the Pyodide stage makes them
// (tests/pyodide/host.mjs), the core's token rules inside Pyodide, and imports in fresh
// interpreters. No cryptography: nothing here verifies a signature.
//
//   node bench/pyodide-bench.mjs MANIFEST.json CASES.json
//
// MANIFEST.json: tests/pyodide/host.py's manifest, with tests/pyodide/bench_probes.py.
// CASES.json, written by scripts/bench_pyodide.py:
//   {"origin": "https://...", "env": {vars}, "cached_tokens": ["...", ...],
//    "fresh": ["Bearer ...", ...],
//    "requests": {"NAME": {"path": "/me", "headers": [[name, value], ...]}, ...}}
//
// Start-up imports the entry as workerd does, primes its caches (bench_probes.prime), sends
// each request once and keeps its answer (scripts/bench_pyodide.py checks them against the
// CPython core's), warms up, then prints one line:
//   {"ready": true, "node", "pyodide", "python", "answers": {NAME: {response, output}}}
// After that (bench/child.mjs's serve()), each -> {"us": ..., "cpu_us": ...} per operation:
//   FETCH NAME N   N requests NAME, one after another, each with its own JS Request (made
//                  before the clock starts); each must get its first answer's status and
//                  number of log lines
//   CORE - N       bench_probes.core: N fresh tokens through the token rules, one Python call
//   IMPORT MODS 1  a fresh interpreter, MODS (comma-separated) imported in turn as workerd
//                  imports the main module; the clock runs for the last one only
//   INFO           -> {"node", "pyodide", "python", "fetches": JS fetches the Worker made}
import { readFileSync } from 'node:fs'
import {
  bootWorker,
  describeResponse,
  exitOnUncaught,
  importModule,
  startInterpreter,
  takeFetches,
  workerFetch,
  workerRequest,
} from '../tests/pyodide/host.mjs'
import { serve, stopwatch } from './child.mjs'

const WARMUP = 300 // per request kind and for the core, before "ready": the hot paths are compiled

exitOnUncaught('pyodide-bench')
const manifest = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const cases = JSON.parse(readFileSync(process.argv[3], 'utf8'))

const output = [] // Python's stdout and stderr lines (the log lines) since the last check
const worker = await bootWorker(manifest, (line) => output.push(line))
const { pyodide } = worker
// bench_probes, or the manifest's own (the ASGI rows': asgi_probes, with the same prime)
const probes = pyodide.pyimport(manifest.probesModule ?? 'bench_probes')
const env = cases.env // a plain JS object, as workerd's env and the stage's
const pyEnv = pyodide.toPy(env)
const pyFresh = pyodide.toPy(cases.fresh)
for (const token of cases.cached_tokens) probes.prime(pyEnv, token)

const request = (name) => {
  const { path, headers } = cases.requests[name]
  return workerRequest(cases.origin + path, 'GET', headers)
}

// Each request once, before any timing: the answer scripts/bench_pyodide.py checks, and what
// every timed request must repeat.
const answers = {}
const expected = {}
for (const name of Object.keys(cases.requests)) {
  output.length = 0
  const response = await describeResponse(await workerFetch(worker, request(name), env))
  answers[name] = { response, output: output.splice(0) }
  expected[name] = { status: response.status, lines: answers[name].output.length }
}

const timers = {
  async FETCH(name, n) {
    if (!Object.hasOwn(expected, name)) throw new Error(`no request ${name}`)
    const { status, lines } = expected[name]
    const requests = Array.from({ length: n }, () => request(name))
    output.length = 0
    let wrong = 0
    const watch = stopwatch()
    for (const each of requests) {
      const response = await workerFetch(worker, each, env)
      if (response.status !== status) wrong++
    }
    const timing = watch(n)
    if (wrong) throw new Error(`${name}: ${wrong} of ${n} answers were not ${status}`)
    if (output.length !== lines * n) {
      throw new Error(`${name}: ${output.length} output lines for ${n} requests, not ${lines * n}`)
    }
    return timing
  },
  async CORE(_, n) {
    const watch = stopwatch()
    probes.core(pyEnv, pyFresh, n)
    return watch(n)
  },
  async IMPORT(names) {
    const fresh = await startInterpreter(manifest, () => {})
    const [timed, ...first] = names.split(',').reverse()
    for (const name of first.reverse()) await importModule(fresh, name)
    const watch = stopwatch()
    await importModule(fresh, timed)
    return watch(1)
  },
}

for (const name of Object.keys(cases.requests)) await timers.FETCH(name, WARMUP)
if (cases.fresh.length) await timers.CORE('-', WARMUP) // the ASGI rows time no core

const python = pyodide.runPython('import sys; sys.version.split()[0]')
let fetches = takeFetches().length
const info = () => {
  fetches += takeFetches().length
  return { node: process.version, pyodide: pyodide.version, python, fetches }
}
await serve(timers, info, { answers })
