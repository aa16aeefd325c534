// The host's waiting-room page in a real browser: the host signs in at the
// test IdP, opens /m/{id}/waiting, sees the two people the driver put in
// the waiting room, lets one in and turns the other away with the page's
// buttons (plain form posts: the page has no scripts), and the list
// empties. The driver then checks both decisions in PostgreSQL and that
// the admitted person picks up a join token.
import { check, finish, heading, need, openBrowser, signInAtIdp, step, watchdog } from './lib.mjs';

watchdog(120000);
const base = need('RG_BASE');
const host = need('RG_USER');
const password = need('RG_PASSWORD');
const meetingId = need('RG_MEETING_ID');
const admitWho = need('RG_ADMIT');
const denyWho = need('RG_DENY');
const url = `${base}/m/${meetingId}/waiting`;

async function note() {
  return (await page.locator('[role=status]').first().textContent()).trim();
}

// The list item of a waiting person, found by the "(identity)" it shows.
function entry(identity) {
  return page.locator('ul.waiting li', { hasText: `(${identity})` });
}

// Clicks the button (Admit or Deny) of that person; resolves on the next
// page.
async function decide(identity, verb) {
  const button = entry(identity).locator(`button[value=${verb}]`);
  const label = await button.getAttribute('aria-label');
  check(label !== null && label.toLowerCase().startsWith(verb), `the ${verb} button has a label (got ${label})`);
  const [resp] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), button.click()]);
  return resp ? resp.status() : 0;
}

const page = await step('Chromium starts with a fresh profile', openBrowser);

await step('the host page sends the host to sign in, and back', async () => {
  await page.goto(url);
  await signInAtIdp(host, password);
  await page.waitForURL(url);
  check((await heading()) === 'Waiting room', `heading "Waiting room" (got ${await heading()})`);
  const who = await page.locator('p', { hasText: 'Signed in as' }).textContent();
  check(who.includes(host), `"Signed in as ${host}" (got ${who})`);
});

await step('the page lists both people waiting and refreshes itself', async () => {
  check((await note()).includes('2 people are waiting'), `"2 people are waiting" (got ${await note()})`);
  check((await entry(admitWho).count()) === 1, `${admitWho} is listed`);
  check((await entry(denyWho).count()) === 1, `${denyWho} is listed`);
  const refresh = await page.locator('meta[http-equiv=refresh]').getAttribute('content');
  check(refresh !== null && refresh.endsWith(`url=/m/${meetingId}/waiting`), `refreshes itself (got ${refresh})`);
  check((await page.locator('script').count()) === 0, 'no scripts');
});

await step('Admit lets the first person in', async () => {
  const status = await decide(admitWho, 'admit');
  check(status === 200, `200 (got ${status})`);
  check(page.url() === url, `still on the host page (at ${page.url()})`);
  const n = await note();
  check(n.includes(`${admitWho} was let in`), `says who was let in (got ${n})`);
  check(n.includes('1 person is waiting'), `"1 person is waiting" (got ${n})`);
  check((await entry(admitWho).count()) === 0, `${admitWho} left the list`);
});

await step('Deny turns the second person away and the list empties', async () => {
  const status = await decide(denyWho, 'deny');
  check(status === 200, `200 (got ${status})`);
  check((await entry(denyWho).count()) === 0, `${denyWho} left the list`);
  check((await page.locator('main').textContent()).includes('Nobody is waiting.'), '"Nobody is waiting."');
});

await finish(0);
