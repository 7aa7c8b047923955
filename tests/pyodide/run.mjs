// The Pyodide stage's host: src/entry.py in the npm `pyodide` (the runtime's Python), called
// the way workerd calls a Python Worker, with real JS Request, Headers, Response and fetch.
//
//   node --experimental-wasm-stack-switching tests/pyodide/run.mjs MANIFEST.json
//
// Driven by tests/pyodide/pyodide_stage.py, which writes the manifest (what to mount where)
// and then sends one JSON command per stdin line; each gets one JSON reply line on stdout.
// Everything else (Python's stdout and stderr, our diagnostics) goes into the replies or to
// stderr, so stdout stays the protocol. Offline: fetch is refused for anything but loopback.
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { createRequire } from "node:module";

// A failure while booting prints its message (a Python traceback included), not the minified
// line of pyodide.asm.mjs it surfaced in, and exits non-zero: the stage fails, never skips.
for (const event of ["uncaughtException", "unhandledRejection"]) {
  process.on(event, (error) => {
    console.error(`pyodide stage: ${error?.message ?? error}`);
    process.exit(1);
  });
}

const manifest = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const { workerDir, hostDir } = manifest; // the Worker's modules as workerd mounts them; ours
const require = createRequire(import.meta.url);
const PYODIDE_DIR = path.dirname(require.resolve("pyodide/package.json")) + path.sep;

// --- Network: record every fetch the Worker makes, refuse all but loopback. ---
const realFetch = globalThis.fetch;
let fetchLog = [];
globalThis.fetch = function loopbackFetch(input, init = {}) {
  const url = typeof input === "string" ? input : input.url;
  fetchLog.push(describeFetch(url, init));
  if (!/^http:\/\/(127\.0\.0\.1|localhost)[:/]/.test(url)) {
    return Promise.reject(new TypeError(`the Pyodide stage is offline; refused ${url}`));
  }
  return realFetch(input, init);
};

// What reached JS fetch: a `cf` that arrived as a PyProxy instead of a plain object would be
// ignored by workerd without a word, so its shape is recorded, not only its value.
function describeFetch(url, init) {
  const plain = (v) =>
    v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype;
  return {
    url,
    method: init.method ?? "GET",
    headers: Object.fromEntries(new Headers(init.headers ?? {})),
    redirect: init.redirect ?? null,
    cache: init.cache ?? null,
    cf:
      init.cf === undefined
        ? null
        : plain(init.cf)
          ? { ...init.cf }
          : `not a plain object: ${Object.prototype.toString.call(init.cf)}`,
  };
}

// --- Stand-ins for the two runtime-private modules the SDK imports. ---

// `_cloudflare_compat_flags`: workerd registers COMPATIBILITY_FLAGS (src/pyodide/internal/
// metadata.ts, a copy of the Worker's flags) with registerJsModule in setupPatches() of
// src/pyodide/python-entrypoint-helper.ts. Here: the flags the SDK and that helper read, each
// on from its date in src/workerd/io/compatibility-date.capnp, or when named in
// wrangler.jsonc's compatibility_flags.
const FLAG_DATES = {
  python_workers_force_new_vendor_path: "2025-08-11", // modules come from python_modules/
  python_no_global_handlers: "2025-08-14", // a Default(WorkerEntrypoint) class, no on_fetch
  python_request_headers_preserve_commas: "2026-02-17", // read by workers.utils for headers
  enable_python_external_sdk: "2026-04-21", // the vendored workers-runtime-sdk, as here
  python_process_pth_files: "2026-05-26", // site.addsitedir(python_modules)
};
const IMPLIED_BY_PYTHON_WORKERS = {
  python_workflows_implicit_dependencies: "2026-02-25", // read by workers.entrypoints
};
function compatibilityFlags(date, named) {
  const flags = {};
  for (const [flag, since] of Object.entries(FLAG_DATES)) {
    flags[flag] = named.includes(flag) || date >= since;
  }
  for (const [flag, since] of Object.entries(IMPLIED_BY_PYTHON_WORKERS)) {
    flags[flag] = named.includes(flag) || (named.includes("python_workers") && date >= since);
  }
  return flags;
}

// `_pyodide_entrypoint_helper`: the object setDoAnImport() builds in
// src/pyodide/python-entrypoint-helper.ts. `cloudflare:workers` does not exist in Node, so its
// stand-in carries the env of the current request and a waitUntil that keeps the promise.
const pending = [];
const patchedContexts = new WeakSet();
const entrypointHelper = {
  doAnImport: (name) => import(name),
  cloudflareWorkersModule: { env: {}, waitUntil: (promise) => pending.push(promise) },
  cloudflareSocketsModule: {},
  workerEntrypoint: class WorkerEntrypoint {},
  // As workerd's: only a real ExecutionContext is patched, once; a Python awaitable passed to
  // waitUntil is copied so it outlives the call, and destroyed when it settles.
  patchWaitUntil(ctx) {
    const tag = Object.prototype.toString.call(ctx);
    if (tag !== "[object ExecutionContext]" || patchedContexts.has(ctx)) return;
    const original = ctx.waitUntil.bind(ctx);
    ctx.waitUntil = (promise) =>
      original(
        (async () => {
          const owned = typeof promise.copy === "function" ? promise.copy() : promise;
          await owned;
          owned.destroy?.();
        })(),
      );
    patchedContexts.add(ctx);
  },
};

// The `ctx` workerd passes to the entrypoint's constructor.
class ExecutionContext {
  waitUntil(promise) {
    pending.push(Promise.resolve(promise));
  }
  passThroughOnException() {}
  get [Symbol.toStringTag]() {
    return "ExecutionContext";
  }
}

// --- Boot: Pyodide from node_modules, the manifest's files, the search path, the entry. ---
const output = []; // Python's stdout and stderr lines since the last reply
const started = performance.now();
const { loadPyodide } = await import("pyodide");
const pyodide = await loadPyodide({
  indexURL: PYODIDE_DIR,
  stdout: (line) => output.push(line),
  stderr: (line) => output.push(line),
});
// As workerd's setupPatches(): no package downloads, ever.
pyodide.loadPackage = () => {
  throw new Error("pyodide.loadPackage is disabled, as in workerd");
};
const bootFetches = fetchLog;
fetchLog = [];

for (const [target, source] of manifest.files) {
  pyodide.FS.mkdirTree(path.posix.dirname(target));
  // A Uint8Array, not the Buffer readFileSync returns: Pyodide rejects Buffers.
  pyodide.FS.writeFile(target, new Uint8Array(fs.readFileSync(source)));
}
const flags = compatibilityFlags(manifest.compatibilityDate, manifest.compatibilityFlags);
pyodide.registerJsModule("_cloudflare_compat_flags", flags);
pyodide.registerJsModule("_pyodide_entrypoint_helper", entrypointHelper);

const JSPI = "Suspending" in WebAssembly || typeof WebAssembly.Suspender === "function";
if (!JSPI) {
  throw new Error("JSPI is off, and workerd always has it: run node with a JSPI flag");
}
// workerd's doPyCallHelper(): every call into Python may suspend (run_sync, awaiting JS).
const call = (fn, ...args) => fn.callWithOptions({ relaxed: false, promising: true }, ...args);

pyodide.runPython(`import sys; sys.path.append(${JSON.stringify(hostDir)})`);
const host = pyodide.pyimport("workerd_host");
host.setup_search_path(workerDir, `${workerDir}/python_modules`, flags.python_process_pth_files);
// workerd's pyimportMainModule(): the main module is imported through a promising call.
const mainModule = await pyodide._api.pyodide_base.pyimport_impl.callPromising(manifest.mainModule);
const probes = pyodide.pyimport("probes");

// --- Commands. ---
async function workerFetch({ url, method, headers, env }) {
  entrypointHelper.cloudflareWorkersModule.env = env;
  const request = new Request(url, { method, headers: new Headers(headers) });
  // workerd's makeEntrypointClass(): a new Python instance per request, built from raw JS
  // ctx and env; fetch goes through introspection.wrapper_func, relaxed.
  const instance = await call(mainModule.Default, new ExecutionContext(), env);
  try {
    const response = await call(host.wrapper_func, true, instance, "fetch", request);
    return {
      isResponse: response instanceof Response,
      type: Object.prototype.toString.call(response),
      status: response.status,
      headers: [...response.headers],
      body: await response.text(),
    };
  } finally {
    instance.destroy();
  }
}

async function probe({ name, args }) {
  return JSON.parse(await call(probes.run, name, JSON.stringify(args)));
}

const commands = { fetch: workerFetch, probe };

async function answer(line) {
  const command = JSON.parse(line);
  let reply;
  try {
    reply = { id: command.id, ok: true, result: await commands[command.op](command) };
  } catch (error) {
    reply = { id: command.id, ok: false, error: String(error?.message ?? error) };
  }
  reply.output = output.splice(0);
  reply.fetches = fetchLog;
  fetchLog = [];
  process.stdout.write(JSON.stringify(reply) + "\n");
}

process.stdout.write(
  JSON.stringify({
    ready: true,
    node: process.version,
    pyodide: pyodide.version,
    jspi: JSPI,
    compatibilityFlags: flags,
    bootMs: Math.round(performance.now() - started),
    bootFetches,
    output: output.splice(0),
  }) + "\n",
);

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim()) await answer(line);
}
await Promise.allSettled(pending);
process.exit(0); // a fetch the Worker abandoned (the timeout case) must not hold the process
