// Shared pieces of roomgate's browser scenarios (tests/browser/*.mjs), run
// one scenario per node process by tests/integration/test_browser*.c
// (browser_th.h), which start the test IdP and roomgate, make the meetings
// and pass everything in the environment (see need() calls). Every step is reported as a TAP line
// on stdout ("ok N - step" / "not ok N - step"); the first failing step ends
// the scenario with a screenshot in RG_SHOT_DIR and exit status 1. Every
// wait is bounded (page timeouts, a watchdog for the whole scenario), so a
// hang fails instead of blocking CI.
import { chromium } from 'playwright-core';
import { createHmac, createPublicKey, timingSafeEqual, verify } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';

export const STEP_TIMEOUT_MS = 15000;

export function need(name) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    console.log(`not ok 1 - environment: ${name} is not set (run through test_browser)`);
    process.exit(2);
  }
  return v;
}

// The flags the issue prescribes: CI runs as root without network.
const CHROMIUM_ARGS = [
  '--no-sandbox', '--headless', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

let stepNo = 0;
let page = null;
let context = null;
let profileDir = null;
let platform = null;

// Runs one named step; a failure ends the scenario.
export async function step(name, fn) {
  stepNo += 1;
  try {
    const r = await fn();
    console.log(`ok ${stepNo} - ${name}`);
    return r;
  } catch (e) {
    console.log(`not ok ${stepNo} - ${name}`);
    for (const line of String(e && e.stack ? e.stack : e).split('\n'))
      console.log(`# ${line}`);
    if (page !== null) {
      console.log(`# page url: ${page.url()}`);
      const shots = process.env.RG_SHOT_DIR;
      if (shots) {
        const file = join(shots, `${process.env.RG_SCENARIO || 'scenario'}-step${stepNo}.png`);
        await page.screenshot({ path: file, fullPage: true, timeout: 5000 })
          .then(() => console.log(`# screenshot: ${file}`))
          .catch((se) => console.log(`# screenshot failed: ${se.message}`));
      }
    }
    await finish(1);
  }
  return undefined;
}

export function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

// A fresh profile in a fresh user-data dir; one browser per scenario.
export async function openBrowser() {
  profileDir = mkdtempSync(join(need('RG_TEST_TMP'), 'chromium-profile-'));
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: process.env.RG_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30000,
  });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  page = context.pages()[0] || (await context.newPage());
  // What the browser itself complains about (CSP violations, blocked
  // navigations) goes into the report.
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') console.log(`# console ${m.type()}: ${m.text()}`);
  });
  return page;
}

export async function finish(status) {
  if (context !== null) await context.close().catch(() => {});
  context = null;
  if (platform !== null) platform.close();
  platform = null;
  if (profileDir !== null) rmSync(profileDir, { recursive: true, force: true });
  profileDir = null;
  process.exit(status);
}

// The whole scenario is bounded too.
export function watchdog(ms) {
  setTimeout(() => {
    console.log(`not ok ${stepNo + 1} - scenario finished within ${ms} ms`);
    finish(1);
  }, ms).unref();
}

// The stand-in meeting platform: roomgate's [admission] redirect_url points
// here (http://127.0.0.1:RG_PLATFORM_PORT/{room}?jwt={token}), so landing
// on it is a real navigation. It remembers what arrived and shows a page.
export function startPlatform() {
  const port = Number(need('RG_PLATFORM_PORT'));
  const arrivals = [];
  platform = createServer((req, res) => {
    const u = new URL(req.url, `http://127.0.0.1:${port}`);
    if (u.pathname === '/favicon.ico') {
      res.writeHead(404).end();
      return;
    }
    arrivals.push({ room: decodeURIComponent(u.pathname.slice(1)), jwt: u.searchParams.get('jwt') });
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('<!DOCTYPE html><title>Meeting platform</title><h1>In the meeting</h1>');
  });
  return new Promise((resolve, reject) => {
    platform.once('error', reject);
    platform.listen(port, '127.0.0.1', () => resolve(arrivals));
  });
}

function b64json(part, what) {
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch (e) {
    throw new Error(`${what} is not base64url JSON: ${e.message}`);
  }
}

function splitJwt(jwt) {
  check(typeof jwt === 'string' && jwt.length > 0, 'a jwt query parameter');
  const parts = jwt.split('.');
  check(parts.length === 3, 'the token has three parts');
  return { parts, header: b64json(parts[0], 'the header'), sig: Buffer.from(parts[2], 'base64url') };
}

// The claims a Jitsi deployment checks (iss/aud/sub/room, nbf/exp with no
// leeway), and ours (jti, context.user).
function checkClaims(c, want) {
  const now = Math.floor(Date.now() / 1000);
  check(c.iss === want.iss, `iss ${want.iss} (got ${c.iss})`);
  check(c.aud === want.aud, `aud ${want.aud} (got ${c.aud})`);
  check(c.sub === want.sub, `sub ${want.sub} (got ${c.sub})`);
  check(c.room === want.room, `room ${want.room} (got ${c.room})`);
  check(Number.isInteger(c.nbf) && c.nbf <= now && c.nbf >= now - 60, `nbf is now (got ${c.nbf}, now ${now})`);
  check(Number.isInteger(c.exp) && c.exp > now && c.exp - c.nbf === want.ttl,
    `exp is nbf + ${want.ttl} (got nbf ${c.nbf}, exp ${c.exp})`);
  check(typeof c.jti === 'string' && /^[0-9a-f-]{36}$/.test(c.jti), `jti is an admission id (got ${c.jti})`);
  check(c.context && c.context.user && c.context.user.id === want.user,
    `context.user.id ${want.user} (got ${JSON.stringify(c.context)})`);
  return c;
}

// Verifies an HS256 join token the way a Jitsi deployment would (alg
// pinned, signature with the shared secret, claims) and returns its claims.
export function verifyHs256(jwt, want) {
  const { parts, header, sig } = splitJwt(jwt);
  check(header.alg === 'HS256', `alg HS256 (got ${header.alg})`);
  check(header.typ === 'JWT', `typ JWT (got ${header.typ})`);
  const mac = createHmac('sha256', want.secret).update(`${parts[0]}.${parts[1]}`).digest();
  check(sig.length === mac.length && timingSafeEqual(sig, mac), 'the HS256 signature verifies with the shared secret');
  const wrong = createHmac('sha256', `${want.secret}x`).update(`${parts[0]}.${parts[1]}`).digest();
  check(!timingSafeEqual(sig, wrong), 'the signature does not verify with another secret');
  return checkClaims(b64json(parts[1], 'the claims'), want);
}

// Verifies an RS256 join token with the public key that roomgate's JWKS
// (GET /.well-known/jwks.json) lists under the token's kid.
export async function verifyRs256(jwt, want) {
  const { parts, header, sig } = splitJwt(jwt);
  check(header.alg === 'RS256', `alg RS256 (got ${header.alg})`);
  check(header.typ === 'JWT', `typ JWT (got ${header.typ})`);
  check(typeof header.kid === 'string' && header.kid.length > 0, 'a kid in the header');
  const res = await fetch(`${need('RG_BASE')}/.well-known/jwks.json`, { signal: AbortSignal.timeout(STEP_TIMEOUT_MS) });
  check(res.status === 200, `the JWKS: 200 (got ${res.status})`);
  const jwks = await res.json();
  const jwk = (jwks.keys || []).find((k) => k.kid === header.kid);
  check(jwk !== undefined, `the JWKS lists kid ${header.kid} (got ${JSON.stringify(jwks)})`);
  check(jwk.kty === 'RSA' && jwk.alg === 'RS256' && jwk.use === 'sig', `an RS256 signing key (got ${JSON.stringify(jwk)})`);
  check(jwk.d === undefined && jwk.p === undefined, 'the JWKS holds no private parts');
  const key = createPublicKey({ key: { kty: jwk.kty, n: jwk.n, e: jwk.e }, format: 'jwk' });
  const data = Buffer.from(`${parts[0]}.${parts[1]}`);
  check(verify('RSA-SHA256', data, key, sig), 'the RS256 signature verifies with the JWKS key');
  const tampered = Buffer.from(`${parts[0]}.${parts[1]}x`);
  check(!verify('RSA-SHA256', tampered, key, sig), 'the signature does not cover other data');
  return checkClaims(b64json(parts[1], 'the claims'), want);
}

// The token as the deployment under test signs it (RG_JWT_ALG).
export async function verifyToken(jwt, want) {
  return need('RG_JWT_ALG') === 'RS256' ? verifyRs256(jwt, want) : verifyHs256(jwt, want);
}

// Signs in at the test IdP: the page must be the IdP's form.
export async function signInAtIdp(user, password) {
  const idp = need('RG_IDP_BASE');
  check(page.url().startsWith(`${idp}/sso?`), `at the IdP's sign-in form (at ${page.url()})`);
  await page.locator('input[name=user]').fill(user);
  await page.locator('input[name=password]').fill(password);
  // The IdP answers with a form that posts itself to roomgate's ACS.
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(need('RG_BASE')), { timeout: STEP_TIMEOUT_MS }),
    page.locator('button', { hasText: 'Sign in' }).click(),
  ]);
}

// Opens the join page (signing in when sent to the IdP) and waits for the
// code form.
export async function openJoinPage(link, user, password) {
  const base = need('RG_BASE');
  await page.goto(`${base}/j/${link}`);
  if (page.url().startsWith(need('RG_IDP_BASE'))) await signInAtIdp(user, password);
  await page.waitForURL(`${base}/j/${link}`);
  await page.locator('input#code').waitFor({ state: 'visible' });
}

// Types a code into the form on the page and submits it; resolves when the
// next page has loaded. Returns the HTTP status of that page (the platform's
// after a redirect).
export async function submitCode(code) {
  const label = page.locator('label[for=code]');
  check((await label.textContent()).includes('Access code'), 'the code field has its label');
  await page.locator('input#code').fill(code);
  const [resp] = await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    page.locator('button[type=submit]').click(),
  ]);
  return resp ? resp.status() : 0;
}

export async function heading() {
  return (await page.locator('h1').first().textContent({ timeout: STEP_TIMEOUT_MS })).trim();
}

export async function alertText() {
  return (await page.locator('[role=alert]').first().textContent({ timeout: STEP_TIMEOUT_MS })).trim();
}

export function currentPage() {
  return page;
}

// Runs a program (no shell) with a bound; rejects on failure.
export function run(file, args, ms) {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: ms }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} failed: ${err.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

// ldapmodify as the directory admin with an LDIF file the driver wrote.
export function ldapmodify(ldifPath) {
  return run('ldapmodify', ['-x', '-H', need('RG_TEST_LDAP_URI'), '-D', need('RG_TEST_LDAP_ADMIN_DN'),
    '-w', need('RG_TEST_LDAP_ADMIN_PASSWORD'), '-f', ldifPath], 10000);
}
