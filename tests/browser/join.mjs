// The join flow in a real browser: sign in at the test IdP, a wrong code
// shows "invalid code", seven digits of an eight-digit code show the
// leading-zero hint, the right code lands on the platform with a token that
// verifies, then the person is taken out of the group (ldapmodify) and the
// next attempt gets the not-on-the-list page.
import {
  alertText, check, currentPage, finish, heading, ldapmodify, need, openBrowser, openJoinPage,
  startPlatform, step, submitCode, verifyHs256, watchdog,
} from './lib.mjs';

watchdog(120000);
const base = need('RG_BASE');
const link = need('RG_LINK');
const code = need('RG_CODE');
const user = need('RG_USER');
const password = need('RG_PASSWORD');
const platformPort = need('RG_PLATFORM_PORT');
const want = {
  secret: need('RG_JWT_SECRET'), iss: need('RG_JWT_ISS'), aud: need('RG_JWT_AUD'),
  sub: need('RG_JWT_SUB'), room: need('RG_ROOM'), ttl: Number(need('RG_JWT_TTL')), user,
};
check(/^[0-9]{8}$/.test(code), 'an eight-digit code to work with');

const arrivals = await step('the stand-in platform listens', startPlatform);
const page = await step('Chromium starts with a fresh profile', openBrowser);

await step('the join page sends us to the IdP, and back to the code form after sign-in', async () => {
  await openJoinPage(link, user, password);
  const who = await page.locator('p', { hasText: 'Signed in as' }).textContent();
  check(who.includes(user), `"Signed in as ${user}" (got ${who})`);
  check((await page.locator('input#code').getAttribute('inputmode')) === 'numeric', 'inputmode=numeric');
});

await step('a wrong code shows "invalid code" and the form again', async () => {
  const wrong = (code[0] === '9' ? '0' : String(Number(code[0]) + 1)) + code.slice(1);
  const status = await submitCode(wrong);
  check(status === 401, `401 (got ${status})`);
  check((await heading()).toLowerCase() === 'invalid code', `heading "Invalid code" (got ${await heading()})`);
  check((await alertText()).toLowerCase().includes('invalid code'), 'the message says "invalid code"');
  check(await page.locator('input#code').isVisible(), 'the form is shown again');
});

await step('seven digits of an eight-digit code show the leading-zero hint', async () => {
  const status = await submitCode(code.slice(1));
  check(status === 400, `400 (got ${status})`);
  const msg = await alertText();
  check(msg.includes('8 digits') && msg.includes('you typed 7'), `says 8 digits, 7 typed (got ${msg})`);
  check(msg.includes('leading zero'), `the leading-zero hint (got ${msg})`);
  check(await page.locator('input#code').isVisible(), 'the form is shown again');
});

let cspBlocked = null;
page.on('console', (m) => {
  if (m.text().includes('form-action')) cspBlocked = m.text();
});
const claims = await step('the right code lands on the platform URL with a token that verifies', async () => {
  await page.locator('input#code').fill(code);
  await Promise.all([
    page.waitForURL((u) => u.port === platformPort && u.hostname === '127.0.0.1').catch(async (e) => {
      // The console message may trail the aborted navigation a little.
      await new Promise((r) => setTimeout(r, 500));
      if (cspBlocked !== null) {
        throw new Error('the join page\'s Content-Security-Policy has form-action \'self\' and browsers apply ' +
          'form-action to the redirects that follow a form post, so the 303 to the platform (another origin) is ' +
          'blocked: form-action must also allow the origin of [admission] redirect_url (server/pages.c). ' +
          `Chromium said: ${cspBlocked}`);
      }
      throw e;
    }),
    page.locator('button[type=submit]').click(),
  ]);
  check((await heading()) === 'In the meeting', 'the platform page is shown');
  const u = new URL(page.url());
  check(decodeURIComponent(u.pathname) === `/${want.room}`, `the room's path (got ${u.pathname})`);
  check(arrivals.length === 1, `one arrival at the platform (got ${arrivals.length})`);
  check(arrivals[0].room === want.room, 'the platform saw the room');
  check(arrivals[0].jwt === u.searchParams.get('jwt'), 'the platform saw the token in the URL');
  return verifyHs256(arrivals[0].jwt, want);
});
// The driver checks this against the admissions table.
console.log(`# jti ${claims.jti}`);

await step('ldapmodify takes the person out of the allowed group', () => ldapmodify(need('RG_LDIF_REMOVE')));

await step('the next attempt is refused with the not-on-the-list page', async () => {
  await openJoinPage(link, user, password);
  const status = await submitCode(code);
  check(status === 403, `403 (got ${status})`);
  const msg = await alertText();
  check(msg.includes("not on this meeting's access list"), `not on the list (got ${msg})`);
  check((await page.locator('input#code').count()) === 0, 'no code form');
  check(!currentPage().url().includes(`:${platformPort}/`), 'not at the platform');
  check(arrivals.length === 1, 'nothing more arrived at the platform');
});

await finish(0);
