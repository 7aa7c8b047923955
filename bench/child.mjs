// What the benchmark's Node children (bench/jose-bench.mjs, bench/pyodide-bench.mjs) share:
// the clock, and the line protocol scripts/bench.py speaks to them.
import { createInterface } from 'node:readline'

// The wall clock and the process's CPU clock (every thread: WebCrypto work runs on libuv's
// pool), started together; calling the result with n gives µs per operation.
export function stopwatch() {
  const wall = process.hrtime.bigint()
  const cpu = process.cpuUsage()
  return (n) => {
    const { user, system } = process.cpuUsage(cpu)
    return { us: Number(process.hrtime.bigint() - wall) / 1000 / n, cpu_us: (user + system) / n }
  }
}

// Prints {"ready": true, ...info(), ...ready}, then answers each stdin line with one JSON line:
//   NAME ARG N   timers[NAME](ARG, N): N operations, {"us": ..., "cpu_us": ...} per operation
//   INFO         info()
//   QUIT         exit 0 (so does end of input)
// A failure answers {"error": "..."}; the caller stops on it.
export async function serve(timers, info, ready = {}) {
  const answer = (data) => process.stdout.write(`${JSON.stringify(data)}\n`)
  answer({ ready: true, ...info(), ...ready })
  for await (const line of createInterface({ input: process.stdin, terminal: false })) {
    const [command, arg, count] = line.trim().split(/\s+/)
    if (command === 'QUIT') break
    try {
      if (command === 'INFO') {
        answer(info())
        continue
      }
      const n = Number(count)
      if (!Object.hasOwn(timers, command) || !Number.isInteger(n) || n <= 0) {
        throw new Error(`bad command: ${line}`)
      }
      answer(await timers[command](arg, n))
    } catch (error) {
      answer({ error: String(error?.message ?? error) })
    }
  }
  process.exit(0)
}
