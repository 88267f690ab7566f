// What the end-to-end tests share: a real `chorus` server on a free port (the embedded store
// in a temporary directory), headless Chromium (Debian's `chromium`, driven by
// playwright-core), signing up through the page, and the REST calls a test makes itself
// (a community server's, say).

import {spawn, execFileSync} from 'node:child_process';
import {mkdtempSync, rmSync, mkdirSync} from 'node:fs';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {after, before} from 'node:test';
import {chromium} from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..', '..');

/** The settings the black-box tests use too (tests/blackbox/support/server.rs). */
const STANDARD_ENV = {
  CHORUS_PASSWORD_HASH_MEMORY_KIB: '256',
  CHORUS_PASSWORD_HASH_ITERATIONS: '1',
  CHORUS_ACCOUNT_CREATIONS_PER_HOUR: '1000000',
  CHORUS_ACCOUNT_CREATION_BURST: '1000000',
  CHORUS_PASSWORD_HASH_CONCURRENCY: '1024',
};

/** How long anything the page should show live may take to show. */
export const LIVE_MS = 10_000;

/**
 * Starts the server binary (`$CHORUS_BIN`, else target/debug/chorus) on 127.0.0.1:0 with
 * `extra` flags; resolves once it prints its address. `stop()` kills it and removes its data.
 */
export async function startServer(extra = []) {
  const bin = process.env.CHORUS_BIN
    ?? path.resolve(repoRoot, process.env.CARGO_TARGET_DIR ?? 'target', 'debug', 'chorus');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'chorus-web-'));
  const child = spawn(bin, ['--listen', '127.0.0.1:0', '--data-dir', dataDir,
    '--allow-private-destinations', ...extra], {
    env: {...process.env, ...STANDARD_ENV, RUST_LOG: 'info'},
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = [];
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no address within 30 s:\n${log.join('')}`)), 30_000);
    child.stdout.on('data', (chunk) => {
      log.push(chunk.toString());
      const m = log.join('').match(/listening on (http:\/\/[0-9.:]+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.stderr.on('data', (chunk) => log.push(chunk.toString()));
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`chorus exited (${code}) before listening:\n${log.join('')}`));
    });
  });
  return {
    url,
    log: () => log.join(''),
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
      rmSync(dataDir, {recursive: true, force: true});
    },
  };
}

/** Headless Chromium: `$CHROMIUM`, else the `chromium` on the PATH. */
export async function launchBrowser() {
  const executablePath = process.env.CHROMIUM
    ?? execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'])
      .toString().trim();
  return chromium.launch({
    executablePath,
    headless: true,
    // Root in CI containers: Chromium's sandbox needs user namespaces it may not have.
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
    timeout: 60_000,
  });
}

/**
 * A page of its own browser context (its own storage: another user), recording the
 * WebSocket frames it sends and receives as parsed JSON (`sent`, `received`).
 */
export async function openUser(browser, url) {
  const context = await browser.newContext({viewport: {width: 1280, height: 800}});
  const page = await context.newPage();
  page.setDefaultTimeout(LIVE_MS);
  const frames = {sent: [], received: []};
  page.on('websocket', (ws) => {
    const keep = (list) => (f) => {
      try {
        list.push(JSON.parse(f.payload.toString()));
      } catch {
        // not JSON: not ours to check
      }
    };
    ws.on('framesent', keep(frames.sent));
    ws.on('framereceived', keep(frames.received));
  });
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await page.goto(url);
  return {context, page, frames};
}

/** Signs up through the page; answers the new account's id and token. */
export async function signUp(page, displayName) {
  const form = page.getByTestId('signup');
  await form.getByLabel('Display name').fill(displayName);
  await form.getByLabel('Password').fill('correct horse battery');
  await form.getByRole('button', {name: 'Sign up'}).click();
  const id = (await page.getByTestId('my-id').textContent()).trim();
  await page.getByTestId('connection').filter({hasText: 'live'}).waitFor();
  const session = await page.evaluate(() => JSON.parse(localStorage.getItem('chorus.session')));
  return {id, token: session.token};
}

/** A REST call of the test itself (as a community server, say); throws on non-2xx. */
export async function call(base, method, path, token, body) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {Authorization: `Bearer ${token}`, 'Content-Type': 'application/json'},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Saves a screenshot when `$CHORUS_WEB_SCREENSHOTS` names a folder (README's pictures). */
export async function screenshot(page, name) {
  const dir = process.env.CHORUS_WEB_SCREENSHOTS;
  if (!dir) return;
  mkdirSync(dir, {recursive: true});
  await page.screenshot({path: path.join(dir, `${name}.png`)});
}

/** Waits until `check()` holds (polling), at most `within` ms. */
export async function until(check, what, within = LIVE_MS) {
  const deadline = Date.now() + within;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A server (with `extra` flags) and a browser for the tests of one file: started before
 * them, closed and killed after them. Answers an object whose `server` and `browser` are set
 * once `before` ran.
 */
export function serverAndBrowser(extra = []) {
  const env = {server: null, browser: null};
  before(async () => {
    env.server = await startServer(extra);
    env.browser = await launchBrowser();
  });
  after(async () => {
    await env.browser?.close();
    await env.server?.stop();
  });
  return env;
}
