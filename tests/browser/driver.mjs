// The browser stage's driver: a real headless Chromium (Debian's, or $CHROMIUM), driven with
// playwright-core, opening tests/browser/page.html from local origins and making its calls.
//
//   node tests/browser/driver.mjs CHROMIUM_EXECUTABLE EMPTY_PROFILE_DIR
//
// Driven by tests/browser/browser_stage.py: one JSON command per stdin line, one JSON reply
// per stdout line (the first, unasked, says the browser is up). Commands carry tokens; replies
// never do: a page's results hold statuses, bodies and headers, not what the page sent.
//
// No request interception (page.route / context.route), ever: with a route installed,
// Playwright answers CORS preflights itself (204, the request's Origin allowed, credentials
// too) and they never reach the Worker, which would make this whole stage meaningless.
import fs from "node:fs";
import readline from "node:readline";
import { chromium } from "playwright-core";

for (const event of ["uncaughtException", "unhandledRejection"]) {
  process.on(event, (error) => {
    console.error(`browser driver: ${error?.stack ?? error}`);
    process.exit(1);
  });
}

const [executablePath, profile] = process.argv.slice(2);
if (!executablePath || !profile) {
  console.error("usage: driver.mjs CHROMIUM_EXECUTABLE EMPTY_PROFILE_DIR");
  process.exit(2);
}
if (fs.readdirSync(profile).length !== 0) {
  console.error(`browser driver: the profile directory ${profile} is not empty`);
  process.exit(2);
}

// As root, offline, on a CI machine: no sandbox (root), no GPU, nothing phoning home.
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const TIMEOUT = 15_000; // ms for any one page action; a call takes milliseconds

// launchPersistentContext is how playwright takes a --user-data-dir of ours: a fresh, empty one.
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  chromiumSandbox: false,
  args: FLAGS,
  timeout: 60_000,
});
context.setDefaultTimeout(TIMEOUT);

const pages = new Map(); // name -> Page
const messages = []; // console messages and page errors since the last reply

function watch(name, page) {
  page.on("console", (message) =>
    messages.push({ page: name, type: message.type(), text: message.text() }),
  );
  page.on("pageerror", (error) =>
    messages.push({ page: name, type: "pageerror", text: String(error?.message ?? error) }),
  );
}

// What the stage reports and checks: which browser, and that it runs as asked.
async function browserInfo() {
  const page = context.pages()[0] ?? (await context.newPage());
  const cdp = await context.newCDPSession(page);
  const version = await cdp.send("Browser.getVersion");
  await cdp.detach();
  // The browser process's own command line, as chrome://version shows it.
  await page.goto("chrome://version");
  const commandLine = await page.locator("#command_line").textContent();
  await page.goto("about:blank");
  return { product: version.product, userAgent: version.userAgent, commandLine };
}

async function open({ page: name, url }) {
  const page = await context.newPage();
  watch(name, page);
  pages.set(name, page);
  const response = await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction(() => window.pageReady === true);
  return {
    status: response?.status() ?? null,
    origin: await page.evaluate(() => location.origin),
    title: await page.title(),
  };
}

async function call({ page: name, name: callName, target, path, token, mode, method, json }) {
  const page = pages.get(name);
  if (!page) throw new Error(`no page named ${name}: open it first`);
  const options = {
    target,
    path,
    token: token ?? null,
    mode: mode ?? "cors",
    method: method ?? "GET",
    json: json ?? null,
  };
  const result = await page.evaluate(([n, o]) => window.call(n, o), [callName, options]);
  // What the page put in its table for this call: what a person looking at it would read.
  const row = await page
    .locator(`tr[data-call="${callName}"] td`)
    .evaluateAll((cells) => cells.map((cell) => cell.textContent));
  return { result, row };
}

// The page as it stands, for the stage to check that no token was written into it.
async function html({ page: name }) {
  const page = pages.get(name);
  if (!page) throw new Error(`no page named ${name}: open it first`);
  return await page.content();
}

const commands = { open, call, html };

async function answer(line) {
  const command = JSON.parse(line);
  let reply;
  try {
    const handler = commands[command.op];
    if (!handler) throw new Error(`unknown op ${command.op}`);
    reply = { id: command.id, ok: true, result: await handler(command) };
  } catch (error) {
    reply = { id: command.id, ok: false, error: String(error?.message ?? error) };
  }
  reply.messages = messages.splice(0);
  process.stdout.write(JSON.stringify(reply) + "\n");
}

process.stdout.write(JSON.stringify({ ready: true, flags: FLAGS, ...(await browserInfo()) }) + "\n");

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim()) await answer(line);
}
await context.close();
process.exit(0);
