// Five wrong codes lock the person out of the meeting: the sixth attempt,
// even with the right code, gets the lockout page saying when to retry,
// without a form, and never reaches the platform.
import {
  alertText, check, finish, heading, need, openBrowser, openJoinPage, startPlatform, step, submitCode,
  watchdog,
} from './lib.mjs';

watchdog(120000);
const link = need('RG_LINK');
const code = need('RG_CODE');
const user = need('RG_USER');
const password = need('RG_PASSWORD');
const maxFailures = Number(need('RG_MAX_FAILURES'));
const wrong = (code[0] === '9' ? '0' : String(Number(code[0]) + 1)) + code.slice(1);

const arrivals = await step('the stand-in platform listens', startPlatform);
const page = await step('Chromium starts with a fresh profile', openBrowser);
await step('sign in and reach the code form', () => openJoinPage(link, user, password));

for (let i = 1; i <= maxFailures; i++) {
  await step(`wrong code ${i} of ${maxFailures} shows "invalid code"`, async () => {
    const status = await submitCode(wrong);
    check(status === 401, `401 (got ${status})`);
    check((await alertText()).toLowerCase().includes('invalid code'), 'the message says "invalid code"');
  });
}

await step('then even the right code gets the lockout page', async () => {
  const status = await submitCode(code);
  check(status === 429, `429 (got ${status})`);
  check((await heading()) === 'Too many attempts', `heading "Too many attempts" (got ${await heading()})`);
  const msg = await alertText();
  check(/Too many failed attempts\. Try again in [0-9]+ seconds \(after [0-9:]+ UTC\)\./.test(msg),
    `says when to retry (got ${msg})`);
  check((await page.locator('input#code').count()) === 0, 'no code form');
  check(arrivals.length === 0, 'nothing arrived at the platform');
});

await step('reloading the join page and trying again is still locked', async () => {
  await openJoinPage(link, user, password);
  const status = await submitCode(code);
  check(status === 429, `429 (got ${status})`);
  check(arrivals.length === 0, 'nothing arrived at the platform');
});

await finish(0);
