// The Pyodide stage's host: the npm `pyodide` (the runtime's Python) with the Worker's files,
// and src/entry.py called the way workerd calls a Python Worker, with real JS Request, Headers,
// Response and fetch. Shared by tests/pyodide/run.mjs (the stage) and bench/pyodide-bench.mjs
// (`make bench`), so both call the entry exactly alike.
//
// The manifest (what to mount where, the compatibility settings) comes from
// tests/pyodide/manifest.py. Offline: fetch is refused for anything but loopback.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/**
 * A failure while booting prints its message (a Python traceback included), not the minified
 * line of pyodide.asm.mjs it surfaced in, and exits non-zero: the caller fails, never skips.
 */
export function exitOnUncaught(label) {
  for (const event of ["uncaughtException", "unhandledRejection"]) {
    process.on(event, (error) => {
      console.error(`${label}: ${error?.message ?? error}`);
      process.exit(1);
    });
  }
}
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

/** The fetch calls made since the last call, as describeFetch records them. */
export function takeFetches() {
  const taken = fetchLog;
  fetchLog = [];
  return taken;
}

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

/** Every promise handed to waitUntil so far, settled. */
export function settled() {
  return Promise.allSettled(pending);
}

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

// --- Boot ---

/**
 * A new interpreter as workerd prepares one for the Worker, up to (not including) importing
 * its main module: Pyodide from node_modules, the manifest's files, the two runtime modules,
 * JSPI, the search path. Python's stdout and stderr lines go to onOutput.
 */
export async function startInterpreter(manifest, onOutput) {
  const { loadPyodide } = await import("pyodide");
  const pyodide = await loadPyodide({ indexURL: PYODIDE_DIR, stdout: onOutput, stderr: onOutput });
  // As workerd's setupPatches(): no package downloads, ever.
  pyodide.loadPackage = () => {
    throw new Error("pyodide.loadPackage is disabled, as in workerd");
  };
  for (const [target, source] of manifest.files) {
    pyodide.FS.mkdirTree(path.posix.dirname(target));
    // A Uint8Array, not the Buffer readFileSync returns: Pyodide rejects Buffers.
    pyodide.FS.writeFile(target, new Uint8Array(fs.readFileSync(source)));
  }
  const flags = compatibilityFlags(manifest.compatibilityDate, manifest.compatibilityFlags);
  pyodide.registerJsModule("_cloudflare_compat_flags", flags);
  pyodide.registerJsModule("_pyodide_entrypoint_helper", entrypointHelper);

  const jspi = "Suspending" in WebAssembly || typeof WebAssembly.Suspender === "function";
  if (!jspi) {
    throw new Error("JSPI is off, and workerd always has it: run node with a JSPI flag");
  }
  pyodide.runPython(`import sys; sys.path.append(${JSON.stringify(manifest.hostDir)})`);
  const host = pyodide.pyimport("workerd_host");
  const { workerDir } = manifest;
  host.setup_search_path(workerDir, `${workerDir}/python_modules`, flags.python_process_pth_files);
  return { pyodide, flags, jspi, host };
}

/** workerd's pyimportMainModule(): a module imported through a promising call. */
export function importModule({ pyodide }, name) {
  return pyodide._api.pyodide_base.pyimport_impl.callPromising(name);
}

/** An interpreter with the Worker's main module imported: what serves requests. */
export async function bootWorker(manifest, onOutput) {
  const interpreter = await startInterpreter(manifest, onOutput);
  const mainModule = await importModule(interpreter, manifest.mainModule);
  return { ...interpreter, mainModule };
}

// workerd's doPyCallHelper(): every call into Python may suspend (run_sync, awaiting JS).
export const call = (fn, ...args) =>
  fn.callWithOptions({ relaxed: false, promising: true }, ...args);

/** A JS Request as the Worker receives one; headers as [name, value] pairs; a body if given. */
export function workerRequest(url, method, headers, body) {
  return new Request(url, { method, headers: new Headers(headers), body: body ?? null });
}

/**
 * One request through the Worker, as workerd's makeEntrypointClass() makes it: a new Python
 * instance per request, built from raw JS ctx and env; fetch goes through
 * introspection.wrapper_func, relaxed. Whatever it returns (a JS Response, if right).
 */
export async function workerFetch({ mainModule, host }, request, env) {
  entrypointHelper.cloudflareWorkersModule.env = env;
  const instance = await call(mainModule.Default, new ExecutionContext(), env);
  try {
    return await call(host.wrapper_func, true, instance, "fetch", request);
  } finally {
    instance.destroy();
  }
}

/** What a fetch returned, for tests/pyodide/host.py's outcome(): the body read as text. */
export async function describeResponse(response) {
  return {
    isResponse: response instanceof Response,
    type: Object.prototype.toString.call(response),
    status: response.status,
    headers: [...response.headers],
    body: await response.text(),
  };
}
