// The waiting room in a real browser: the right code at a meeting with the
// waiting room on shows the waiting page, which checks again by itself;
// the host lets the person in over the API (a host service token); the
// participant's page then lands on the platform URL with a join token that
// verifies (HS256 with the shared secret, or RS256 with roomgate's JWKS, as
// RG_JWT_ALG says) and names the admission the host let in.
import {
  check, finish, heading, need, openBrowser, openJoinPage, startPlatform, step, submitCode, verifyToken,
  watchdog, STEP_TIMEOUT_MS,
} from './lib.mjs';

watchdog(120000);
const base = need('RG_BASE');
const link = need('RG_LINK');
const code = need('RG_CODE');
const user = need('RG_USER');
const password = need('RG_PASSWORD');
const meetingId = need('RG_MEETING_ID');
const hostToken = need('RG_HOST_TOKEN');
const platformPort = need('RG_PLATFORM_PORT');
const want = {
  secret: process.env.RG_JWT_SECRET, iss: need('RG_JWT_ISS'), aud: need('RG_JWT_AUD'),
  sub: need('RG_JWT_SUB'), room: need('RG_ROOM'), ttl: Number(need('RG_JWT_TTL')), user,
};

// The host's side: roomgate's JSON API with a bearer token, bounded.
async function host(method, path) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${hostToken}`, 'Content-Type': 'application/json' },
    body: method === 'POST' ? '{}' : undefined,
    signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
  });
  const text = await res.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw new Error(`${method} ${path}: ${res.status}, not JSON: ${text}`);
  }
  return { status: res.status, body };
}

const arrivals = await step('the stand-in platform listens', startPlatform);
const page = await step('Chromium starts with a fresh profile', openBrowser);
await step('sign in and reach the code form', () => openJoinPage(link, user, password));

await step('the right code shows the waiting page, which refreshes itself', async () => {
  const status = await submitCode(code);
  check(status === 202, `202 (got ${status})`);
  check((await heading()).toLowerCase().includes('waiting'), `a waiting heading (got ${await heading()})`);
  const note = await page.locator('[role=status]').first().textContent();
  check(note.includes('Waiting for the host to let you in'), `the waiting note (got ${note})`);
  const refresh = await page.locator('meta[http-equiv=refresh]').getAttribute('content');
  check(/^[0-9]+; url=\/j\/[A-Za-z0-9_-]+\/wait$/.test(refresh), `a refresh to the wait page (got ${refresh})`);
  check(arrivals.length === 0, 'nothing arrived at the platform');
});

await step('the page keeps waiting across a refresh', async () => {
  // The refresh lands on /j/{link}/wait and still waits.
  await page.waitForURL(`${base}/j/${link}/wait`, { timeout: STEP_TIMEOUT_MS });
  await page.locator('[role=status]').first().waitFor({ state: 'visible' });
  check(arrivals.length === 0, 'nothing arrived at the platform');
});

const admission = await step('the host sees the person waiting and lets them in', async () => {
  const list = await host('GET', `/v1/meetings/${meetingId}/waiting`);
  check(list.status === 200, `the list: 200 (got ${list.status} ${JSON.stringify(list.body)})`);
  const mine = (list.body.waiting || []).filter((e) => e.identity === user);
  check(mine.length === 1, `one entry for ${user} (got ${JSON.stringify(list.body)})`);
  const id = mine[0].admission_id;
  const res = await host('POST', `/v1/meetings/${meetingId}/waiting/${id}:admit`);
  check(res.status === 200, `admit: 200 (got ${res.status} ${JSON.stringify(res.body)})`);
  check(res.body.state === 'admitted', `state admitted (got ${res.body.state})`);
  return id;
});

const claims = await step('the waiting page lands on the platform URL with a token that verifies', async () => {
  // The page refreshes by itself every few seconds: no clicks here.
  await page.waitForURL((u) => u.port === platformPort && u.hostname === '127.0.0.1', { timeout: 20000 });
  check((await heading()) === 'In the meeting', 'the platform page is shown');
  check(arrivals.length === 1, `one arrival at the platform (got ${arrivals.length})`);
  check(arrivals[0].room === want.room, 'the platform saw the room');
  const c = await verifyToken(arrivals[0].jwt, want);
  check(c.jti === admission, `jti is the admission the host let in (got ${c.jti}, want ${admission})`);
  return c;
});
console.log(`# jti ${claims.jti}`);

await finish(0);
