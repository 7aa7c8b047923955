// The Pyodide stage's driver: src/entry.py in the npm `pyodide` (the runtime's Python), called
// the way workerd calls a Python Worker (tests/pyodide/host.mjs, shared with `make bench`).
//
//   node tests/pyodide/run.mjs MANIFEST.json
//
// Driven by tests/pyodide/pyodide_stage.py, which writes the manifest (what to mount where)
// and then sends one JSON command per stdin line; each gets one JSON reply line on stdout.
// Everything else (Python's stdout and stderr, our diagnostics) goes into the replies or to
// stderr, so stdout stays the protocol.
import fs from "node:fs";
import readline from "node:readline";
import {
  bootWorker,
  call,
  describeResponse,
  exitOnUncaught,
  settled,
  takeFetches,
  workerFetch,
  workerRequest,
} from "./host.mjs";

exitOnUncaught("pyodide stage");

const manifest = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const output = []; // Python's stdout and stderr lines since the last reply
const started = performance.now();
const worker = await bootWorker(manifest, (line) => output.push(line));
const bootFetches = takeFetches();
// The stage's own Python beside the Worker: probes.py, or the manifest's (the ASGI stage's).
const probes = worker.pyodide.pyimport(manifest.probesModule ?? "probes");

// --- Commands. ---
// body: the request body's bytes in base64 (any bytes, not only UTF-8), or null for none.
async function fetchCommand({ url, method, headers, env, body }) {
  const bytes = body === null || body === undefined ? null : Buffer.from(body, "base64");
  const request = workerRequest(url, method, headers, bytes && new Uint8Array(bytes));
  return describeResponse(await workerFetch(worker, request, env));
}

async function probe({ name, args }) {
  return JSON.parse(await call(probes.run, name, JSON.stringify(args)));
}

// `count` requests at once through Default.fetch, each its own JS Request and entrypoint
// instance as workerd makes them, interleaved in one isolate: how many got which status.
async function burst({ url, method, headers, env, count }) {
  const responses = await Promise.all(
    Array.from({ length: count }, () =>
      workerFetch(worker, workerRequest(url, method, headers), env),
    ),
  );
  const statuses = {};
  for (const { status } of responses) statuses[status] = (statuses[status] ?? 0) + 1;
  return { statuses };
}

const commands = { fetch: fetchCommand, probe, burst };

async function answer(line) {
  const command = JSON.parse(line);
  let reply;
  try {
    reply = { id: command.id, ok: true, result: await commands[command.op](command) };
  } catch (error) {
    reply = { id: command.id, ok: false, error: String(error?.message ?? error) };
  }
  reply.output = output.splice(0);
  reply.fetches = takeFetches();
  process.stdout.write(JSON.stringify(reply) + "\n");
}

process.stdout.write(
  JSON.stringify({
    ready: true,
    node: process.version,
    pyodide: worker.pyodide.version,
    jspi: worker.jspi,
    compatibilityFlags: worker.flags,
    bootMs: Math.round(performance.now() - started),
    bootFetches,
    output: output.splice(0),
  }) + "\n",
);

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim()) await answer(line);
}
await settled();
process.exit(0); // a fetch the Worker abandoned (the timeout case) must not hold the process
