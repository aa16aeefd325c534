// The failed-attempts page in a real browser: the host signs in at the test
// IdP, opens /m/{id}/attempts and finds the totals the driver counted in
// the audit log with SQL, a server-rendered SVG chart whose failed bars add
// up to the same number, the lockout and probing marks, no scripts and no
// external assets. Screenshots of the page and of the chart go to
// RG_SHOT_DIR for the driver to check.
import { join } from 'node:path';
import { check, finish, heading, need, openBrowser, signInAtIdp, step, watchdog } from './lib.mjs';

watchdog(120000);
const base = need('RG_BASE');
const host = need('RG_USER');
const password = need('RG_PASSWORD');
const meetingId = need('RG_MEETING_ID');
const wantFailed = Number(need('RG_WANT_FAILED'));
const wantAllowed = Number(need('RG_WANT_ALLOWED'));
const shots = need('RG_SHOT_DIR');
const url = `${base}/m/${meetingId}/attempts`;
let csp = null;

const page = await step('Chromium starts with a fresh profile', openBrowser);

await step('the attempts page sends the host to sign in, and back', async () => {
  page.on('response', (r) => {
    if (r.url() === url) csp = r.headers()['content-security-policy'] || '';
  });
  await page.goto(url);
  if (page.url().startsWith(need('RG_IDP_BASE'))) await signInAtIdp(host, password);
  await page.waitForURL(url);
  check((await heading()) === 'Failed attempts', `heading "Failed attempts" (got ${await heading()})`);
});

await step('the totals are the audit log\'s', async () => {
  const failed = Number((await page.locator('#total-failed').textContent()).trim());
  const allowed = Number((await page.locator('#total-allowed').textContent()).trim());
  check(failed === wantFailed, `failed ${wantFailed} (got ${failed})`);
  check(allowed === wantAllowed, `allowed ${wantAllowed} (got ${allowed})`);
});

await step('the chart is inline SVG whose failed bars add up to the total', async () => {
  const chart = page.locator('svg#attempts-chart');
  check((await chart.count()) === 1, 'one chart');
  const box = await chart.boundingBox();
  check(box !== null && box.width > 200 && box.height > 100, `the chart is drawn (box ${JSON.stringify(box)})`);
  const bars = await page.locator('svg#attempts-chart rect.bar.failed').evaluateAll(
    (els) => els.map((e) => Number(e.getAttribute('data-failed'))));
  check(bars.length > 1, `several failed bars (got ${bars.length})`);
  const sum = bars.reduce((a, b) => a + b, 0);
  check(sum === wantFailed, `bars add up to ${wantFailed} (got ${sum})`);
});

await step('lockouts and the probing flag are marked', async () => {
  const locks = await page.locator('svg#attempts-chart .mark.lockout').count();
  const probes = await page.locator('svg#attempts-chart .mark.probing').count();
  check(locks >= 1, `a lockout mark (got ${locks})`);
  check(probes === 1, `one probing mark (got ${probes})`);
  const flag = (await page.locator('#probing').textContent()).trim();
  check(flag.includes('flagged as probed'), `the probing note (got ${flag})`);
});

await step('no scripts, no external assets, the pages\' CSP', async () => {
  check((await page.locator('script').count()) === 0, 'no scripts');
  check((await page.locator('img, link[rel=stylesheet], iframe').count()) === 0, 'no external assets');
  check(csp !== null && csp.includes("default-src 'none'"), `CSP default-src 'none' (got ${csp})`);
});

await step('screenshots of the page and of the chart are taken', async () => {
  await page.screenshot({ path: join(shots, 'attempts-page.png'), fullPage: true });
  await page.locator('svg#attempts-chart').screenshot({ path: join(shots, 'attempts-chart.png') });
});

await finish(0);
