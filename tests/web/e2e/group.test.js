// Two users in two browser contexts at once on an open group page: the owner creates the
// group and adds the other, approves a community's binding request live, and a dynamic the
// community posts over HTTP with its server key appears live on both pages; chat too. Then
// one connection drops while a message is sent, and the reconnect resumes with the one
// cursor (`since` and `groups`).

import {test} from 'node:test';
import assert from 'node:assert/strict';
import {
  LIVE_MS, call, openUser, screenshot, signUp, serverAndBrowser, until,
} from './support.js';

const env = serverAndBrowser();

test('a community dynamic appears live in an open group page', async () => {
  const ann = await openUser(env.browser, env.server.url);
  const bob = await openUser(env.browser, env.server.url);
  const annAccount = await signUp(ann.page, 'Ann');
  const bobAccount = await signUp(bob.page, 'Bob');

  // Ann creates the group and adds Bob by his account id; Bob opens it.
  await ann.page.getByRole('link', {name: 'Groups'}).click();
  const create = ann.page.getByTestId('create-group');
  await create.getByLabel('Name').fill('Hikers');
  await create.getByRole('button', {name: 'Create group'}).click();
  await ann.page.waitForURL(/#\/groups\/[0-9a-f]{32}$/);
  const gid = ann.page.url().split('/').pop();
  await ann.page.getByTestId('group-name').filter({hasText: 'Hikers'}).waitFor();
  const add = ann.page.getByTestId('add-member');
  await add.getByLabel('or an account id').fill(bobAccount.id);
  await add.getByRole('button', {name: 'Add'}).click();
  await ann.page.getByTestId(`member-${bobAccount.id}`).waitFor();
  await bob.page.goto(`${env.server.url}/#/groups/${gid}`);
  await bob.page.getByTestId('group-name').filter({hasText: 'Hikers'}).waitFor();

  // A community asks to bind the group (its server's calls, over HTTP); Ann sees the
  // request live on the open page and approves it; Bob's page shows the binding.
  const community = await call(env.server.url, 'POST', '/v1/communities', annAccount.token,
    {name: 'Trail club'});
  const cid = community.community_id;
  const key = community.server_key;
  for (const member of [annAccount.id, bobAccount.id]) {
    await call(env.server.url, 'POST', `/v1/communities/${cid}/members`, key, {account_id: member});
  }
  await call(env.server.url, 'POST', `/v1/communities/${cid}/binding-requests`, key,
    {group_id: gid, note: 'we hike too'});
  await ann.page.getByTestId(`approve-${cid}`).click();
  await ann.page.getByTestId(`binding-${cid}`).waitFor();
  await bob.page.getByTestId(`binding-${cid}`).waitFor();

  // The community posts a dynamic with its key: both open pages show it, live.
  await call(env.server.url, 'POST', `/v1/communities/${cid}/dynamics`, key,
    {account_id: bobAccount.id, kind: 'post', text: 'Summit reached at 9:40!'});
  for (const user of [ann, bob]) {
    await user.page.getByTestId('dynamics').getByTestId('dynamic')
      .filter({hasText: 'Summit reached at 9:40!'}).waitFor();
  }
  assert.ok(bob.frames.received.some((f) => f.type === 'group.dynamic' && f.group_id === gid));

  // Chat: Bob writes, Ann reads.
  const send = bob.page.getByTestId('send-message');
  await send.getByPlaceholder('Message').fill('Who brings the rope?');
  await send.getByRole('button', {name: 'Send'}).click();
  await ann.page.getByTestId('messages').getByTestId('message')
    .filter({hasText: 'Who brings the rope?'}).waitFor();
  await screenshot(ann.page, 'group');

  // Bob's network drops; Ann writes meanwhile; Bob reconnects and resumes with the one
  // cursor: `since` the highest account seq, `groups` the highest group_seq per group.
  await bob.page.evaluate(() => window.chorus.live.hold());
  await bob.page.getByTestId('connection').filter({hasText: 'offline'}).waitFor();
  const groupSeqs = bob.frames.received
    .filter((f) => f.group_id === gid && typeof f.group_seq === 'number')
    .map((f) => f.group_seq);
  const annSend = ann.page.getByTestId('send-message');
  await annSend.getByPlaceholder('Message').fill('I do, see you at 7');
  await annSend.getByRole('button', {name: 'Send'}).click();
  await until(() => ann.frames.received.some((f) => f.type === 'group.message'
    && f.data.text === 'I do, see you at 7'), 'the message to be stored');
  await bob.page.evaluate(() => window.chorus.live.release());
  await bob.page.getByTestId('connection').filter({hasText: 'live'}).waitFor();
  const resume = bob.frames.sent.find((f) => f.type === 'resume');
  assert.ok(resume, 'the reconnect sends resume');
  if (groupSeqs.length > 0) {
    // A server of revision 2 numbers group frames with group_seq: the missed message
    // comes back through `resume`'s `groups`.
    assert.equal(resume.groups[gid], Math.max(...groupSeqs));
    await bob.page.getByTestId('messages').getByTestId('message')
      .filter({hasText: 'I do, see you at 7'}).waitFor({timeout: LIVE_MS * 2});
  } else {
    console.log('# this server sends no group_seq yet: the group part of resume is not checked');
  }
  await ann.context.close();
  await bob.context.close();
});
