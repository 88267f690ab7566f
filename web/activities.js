// The activity page: the platforms linked to the account (`/v1/me/platforms`), posting an
// activity (`POST /v1/me/activities`), each platform's release status changing live
// (`release.status`), and friends' posts as they come (`activity.posted`).

import {api} from './api.js';
import {field, form, h, when} from './dom.js';

/** The config fields each platform's link form asks for (docs/api.md, platform accounts). */
const PLATFORMS = {
  webhook: {handle: 'Handle (any label)', config: [['url', 'URL', 'url'], ['secret', 'Secret', 'password']]},
  mastodon: {handle: 'Handle (@user@host)', config: [['base_url', 'Instance URL', 'url'],
    ['access_token', 'Access token', 'password']]},
  email: {handle: 'Email address', config: []},
};

export class ActivityPage {
  constructor(app) {
    this.app = app;
    this.links = [];
    /** Activity id to `{activity, releases: Map link_id -> release}`, the user's own. */
    this.mine = new Map();
    /** Friends' posts seen live, newest first. */
    this.friendsPosts = [];
    this.linksEl = h('ul', {class: 'list', 'data-testid': 'platforms'});
    this.configEl = h('div', {});
    const platform = h('select', {name: 'platform', onchange: () => this.configFields(platform.value)},
      ...Object.keys(PLATFORMS).map((p) => h('option', {value: p}, p)));
    this.linkForm = form({'data-testid': 'link-platform'}, [
      h('label', {}, h('span', {}, 'Platform'), platform), this.configEl,
    ], 'Link', async (v, el) => {
      const spec = PLATFORMS[v.platform];
      const config = Object.fromEntries(spec.config.map(([key]) => [key, v[key]]));
      await api('POST', '/v1/me/platforms', {platform: v.platform, handle: v.handle.trim(), config});
      el.reset();
      this.configFields('webhook');
      await this.loadLinks();
      this.render();
    });
    this.configFields('webhook');
    this.postForm = form({'data-testid': 'post-activity'}, [
      h('label', {}, h('span', {}, 'Post to every linked platform at once'),
        h('textarea', {name: 'text', required: true, maxlength: 5000, rows: 3})),
    ], 'Post', async (v, el) => {
      const a = await api('POST', '/v1/me/activities',
        {text: v.text, idempotency_key: crypto.randomUUID()});
      this.remember({activity_id: a.activity_id, account_id: app.me, text: v.text,
        created_ms: a.created_ms ?? Date.now()}, a.releases);
      el.reset();
      this.render();
    });
    this.mineEl = h('ol', {class: 'feed', 'data-testid': 'my-activities'});
    this.friendsEl = h('ol', {class: 'feed', 'data-testid': 'friends-activities'});
    this.element = h('div', {class: 'columns'},
      h('section', {class: 'card'}, h('h2', {}, 'Post'), this.postForm,
        h('h3', {}, 'Your posts and where they went'), this.mineEl),
      h('section', {class: 'card'}, h('h2', {}, 'Linked platforms'), this.linksEl, this.linkForm,
        h('h3', {}, 'Friends\' posts (live)'), this.friendsEl));
  }

  configFields(platform) {
    const spec = PLATFORMS[platform];
    this.configEl.replaceChildren(field(spec.handle, 'handle', {required: true}),
      ...spec.config.map(([key, label, type]) => field(label, key, {type, required: true})));
  }

  async loadLinks() {
    this.links = (await api('GET', '/v1/me/platforms')).items;
  }

  async reload() {
    await this.loadLinks();
    const feed = await api('GET', `/v1/accounts/${this.app.me}/activities?limit=10`);
    await Promise.all(feed.items.map(async (a) => {
      const r = await api('GET', `/v1/activities/${a.activity_id}/releases`);
      this.remember(a, r.items);
    }));
  }

  /**
   * Records an activity and releases read over HTTP. A live `release.status` may have come
   * first: a release read here replaces what is known only if it went further (more
   * attempts, or the same attempts and no longer `pending`).
   */
  remember(activity, releases) {
    let entry = this.mine.get(activity.activity_id);
    if (!entry) {
      entry = {activity, releases: new Map()};
      this.mine.set(activity.activity_id, entry);
    } else if (entry.placeholder) {
      entry.activity = activity;
      entry.placeholder = false;
    }
    for (const r of releases ?? []) {
      const known = entry.releases.get(r.link_id);
      const further = !known || (r.attempts ?? 0) > (known.attempts ?? 0)
        || ((r.attempts ?? 0) === (known.attempts ?? 0) && known.status === 'pending');
      if (further) entry.releases.set(r.link_id, r);
    }
  }

  render() {
    this.linksEl.replaceChildren(...this.links.map((l) => h('li', {},
      h('span', {}, h('span', {class: 'badge'}, l.platform), ' ', l.handle,
        l.status && l.status !== 'active' ? h('span', {class: 'muted'}, ` (${l.status})`) : null),
      h('span', {class: 'actions'}, h('button', {class: 'secondary',
        onclick: () => api('DELETE', `/v1/me/platforms/${l.link_id}`)
          .then(() => this.loadLinks()).then(() => this.render())}, 'Unlink')))));
    if (this.links.length === 0) {
      this.linksEl.append(h('li', {class: 'muted'}, 'None: a post then goes to friends only.'));
    }
    const mine = [...this.mine.values()].sort((a, b) => b.activity.created_ms - a.activity.created_ms);
    this.mineEl.replaceChildren(...mine.map(({activity, releases}) => h('li',
      {'data-testid': `activity-${activity.activity_id}`},
      h('p', {class: 'text'}, activity.text), h('time', {}, when(activity.created_ms)),
      h('ul', {class: 'releases'}, ...[...releases.values()].map((r) => h('li', {},
        h('span', {class: 'badge'}, r.platform), ' ',
        this.links.find((l) => l.link_id === r.link_id)?.handle ?? '', ' ',
        h('span', {class: `release ${r.status}`, 'data-testid': `release-${r.link_id}`}, r.status),
        r.attempts ? h('span', {class: 'muted'}, ` after ${r.attempts} attempt${r.attempts > 1 ? 's' : ''}`) : null,
        r.last_error ? h('span', {class: 'muted'}, ` — ${r.last_error}`) : null,
        r.status === 'retrying' && r.next_attempt_ms
          ? h('span', {class: 'muted'}, `, next at ${when(r.next_attempt_ms)}`) : null))))));
    this.friendsEl.replaceChildren(...this.friendsPosts.map((a) => h('li', {},
      h('span', {class: 'author'}, this.app.names.name(a.account_id)), ' ',
      h('span', {class: 'text'}, a.text), h('time', {}, when(a.created_ms)))));
    if (this.friendsPosts.length === 0) {
      this.friendsEl.append(h('li', {class: 'muted'}, 'Your friends\' posts show here as they come.'));
    }
  }

  event(frame) {
    const data = frame.data ?? {};
    if (frame.type === 'release.status') {
      const entry = this.mine.get(data.activity_id);
      if (entry) entry.releases.set(data.link_id, data);
      else {
        this.remember({activity_id: data.activity_id, text: '…', created_ms: Date.now()}, [data]);
        this.mine.get(data.activity_id).placeholder = true;
      }
    } else if (frame.type === 'activity.posted' && data.account_id !== this.app.me) {
      if (!this.friendsPosts.some((a) => a.activity_id === data.activity_id)) {
        this.friendsPosts.unshift(data);
      }
    } else if (frame.type === 'activity.posted') {
      this.remember(data, []);
    }
  }
}
