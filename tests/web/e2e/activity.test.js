// Posting an activity through the page and watching each platform's release status change
// live (`release.status`): a webhook that answers 503 once and then 200 goes pending →
// retrying → delivered; one that always answers 400 goes failed.

import {after, before, test} from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import {openUser, screenshot, serverAndBrowser, signUp} from './support.js';

let hooks;
/** Webhook receiver: path to the statuses it answers in turn (the last one repeats). */
const answers = {'/flaky': [503, 200], '/broken': [400]};
const calls = {};

before(async () => {
  hooks = http.createServer((req, res) => {
    req.resume();
    const seen = (calls[req.url] = (calls[req.url] ?? 0) + 1);
    const list = answers[req.url] ?? [404];
    res.writeHead(list[Math.min(seen, list.length) - 1], {'Retry-After': '1'}).end();
  });
  await new Promise((r) => hooks.listen(0, '127.0.0.1', r));
});

after(() => hooks?.close());

const env = serverAndBrowser(['--release-backoff-base-ms', '300']);

test('each platform\'s release status changes live', async () => {
  const ann = await openUser(env.browser, env.server.url);
  await signUp(ann.page, 'Ann');
  await ann.page.getByRole('link', {name: 'Activity'}).click();
  const base = `http://127.0.0.1:${hooks.address().port}`;
  for (const [handle, hookPath] of [['ann-blog', '/flaky'], ['ann-wiki', '/broken']]) {
    const link = ann.page.getByTestId('link-platform');
    await link.getByLabel('Handle (any label)').fill(handle);
    await link.getByLabel('URL').fill(`${base}${hookPath}`);
    await link.getByLabel('Secret').fill('s3cret-s3cret');
    await link.getByRole('button', {name: 'Link'}).click();
    await ann.page.getByTestId('platforms').getByText(handle).waitFor();
  }

  const post = ann.page.getByTestId('post-activity');
  await post.getByRole('textbox').fill('Shipped the web client!');
  await post.getByRole('button', {name: 'Post'}).click();
  const item = ann.page.getByTestId('my-activities').locator('li[data-testid^="activity-"]')
    .filter({hasText: 'Shipped the web client!'});
  await item.waitFor();
  await item.locator('.release.delivered').waitFor({timeout: 20_000});
  await item.locator('.release.failed').waitFor({timeout: 20_000});
  const statuses = ann.frames.received.filter((f) => f.type === 'release.status')
    .map((f) => f.data.status);
  assert.ok(statuses.includes('retrying'), `saw ${statuses}`);
  assert.ok(statuses.includes('delivered'), `saw ${statuses}`);
  assert.equal(calls['/flaky'], 2);
  await screenshot(ann.page, 'activity');
  await ann.context.close();
});
