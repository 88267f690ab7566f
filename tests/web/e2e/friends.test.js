// Two users in two browser contexts at once: they become friends through the page, one
// changes its profile and the other sees it live; then the other's connection drops, a
// change happens meanwhile, and the reconnect resumes with the one cursor and shows it;
// last, logging out and in again.

import {test} from 'node:test';
import assert from 'node:assert/strict';
import {
  LIVE_MS, openUser, screenshot, signUp, serverAndBrowser, until,
} from './support.js';

const env = serverAndBrowser();

test('a friend sees a profile change live, and after a reconnect', async () => {
  const ann = await openUser(env.browser, env.server.url);
  const bob = await openUser(env.browser, env.server.url);
  const annAccount = await signUp(ann.page, 'Ann');
  const bobAccount = await signUp(bob.page, 'Bob');

  // Bob asks, Ann sees the request live and accepts it; both lists show the friend.
  const ask = bob.page.getByTestId('friend-request-form');
  await ask.getByLabel('Friend\'s account id').fill(annAccount.id);
  await ask.getByRole('button', {name: 'Send request'}).click();
  await ann.page.getByTestId(`accept-${bobAccount.id}`).click();
  await ann.page.getByTestId(`friend-${bobAccount.id}`).waitFor();
  const annOnBob = bob.page.getByTestId(`friend-${annAccount.id}`);
  await annOnBob.waitFor();

  // Ann changes her profile; Bob's page shows it without a reload.
  const profile = ann.page.getByTestId('profile-form');
  await profile.getByLabel('Display name').fill('Ann Smith');
  await profile.getByLabel('Status').fill('hiking the ridge');
  await profile.getByRole('button', {name: 'Save profile'}).click();
  await annOnBob.getByTestId(`name-${annAccount.id}`).filter({hasText: 'Ann Smith'}).waitFor();
  await bob.page.getByTestId(`friend-status-${annAccount.id}`)
    .filter({hasText: 'hiking the ridge'}).waitFor();
  assert.ok(bob.frames.received.some((f) => f.type === 'profile.updated'
    && f.data.account_id === annAccount.id && typeof f.seq === 'number'));

  // Presence: Ann is online on Bob's page (from the friend list's `online`).
  assert.ok(await bob.page.evaluate(() => window.chorus.app.hasPresence));
  await bob.page.locator(`[data-testid="presence-${annAccount.id}"][data-online="true"]`)
    .waitFor();
  await screenshot(bob.page, 'friends');

  // Bob's network drops; Ann changes her status meanwhile; Bob reconnects and resumes.
  await bob.page.evaluate(() => window.chorus.live.hold());
  await bob.page.getByTestId('connection').filter({hasText: 'offline'}).waitFor();
  const seenBefore = Math.max(...bob.frames.received
    .filter((f) => typeof f.seq === 'number' && typeof f.group_id !== 'string')
    .map((f) => f.seq));
  await profile.getByLabel('Status').fill('at the summit');
  await profile.getByRole('button', {name: 'Save profile'}).click();
  // Stored once Ann's own device has the event.
  await until(() => ann.frames.received.some((f) => f.type === 'profile.updated'
    && f.data.changes?.status === 'at the summit'), 'the change to be stored');
  await bob.page.evaluate(() => window.chorus.live.release());
  await bob.page.getByTestId(`friend-status-${annAccount.id}`)
    .filter({hasText: 'at the summit'}).waitFor({timeout: LIVE_MS * 2});
  const resume = bob.frames.sent.find((f) => f.type === 'resume');
  assert.ok(resume, 'the reconnect sends resume');
  assert.equal(resume.since, seenBefore, 'resume starts after the highest account seq seen');
  assert.equal(typeof resume.groups, 'object');

  // Bob logs out and in again (by account id): the token is the page's, the state the server's.
  await bob.page.getByTestId('logout').click();
  const login = bob.page.getByTestId('login');
  await login.getByLabel('Account id, email or phone').fill(bobAccount.id);
  await login.getByLabel('Password').fill('correct horse battery');
  await login.getByRole('button', {name: 'Log in'}).click();
  await bob.page.getByTestId(`friend-status-${annAccount.id}`)
    .filter({hasText: 'at the summit'}).waitFor();
  const stored = await bob.page.evaluate(() => JSON.parse(localStorage.getItem('chorus.session')));
  assert.notEqual(stored.token, bobAccount.token, 'a new session, a new token');

  // Ann closes her page: once the debounce has passed, Bob's page shows her offline, live
  // (`presence.changed`, which is in no log: no seq).
  await ann.context.close();
  await bob.page.locator(`[data-testid="presence-${annAccount.id}"][data-online="false"]`)
    .waitFor({timeout: LIVE_MS * 2});
  assert.ok(bob.frames.received.some((f) => f.type === 'presence.changed'
    && f.data.account_id === annAccount.id && f.data.online === false
    && f.data.devices === 0 && f.seq === undefined));
  await bob.context.close();
});
