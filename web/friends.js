// The friends page: the user's own profile (edited with `PATCH /v1/me/profile`), friend
// requests (sent, accepted, declined), and the friends, whose profiles change live
// (`profile.updated`) and whose presence shows when the server reports it.

import {api} from './api.js';
import {field, form, h} from './dom.js';
import {who} from './names.js';

/** Profile fields the page edits; others a profile has are shown, not edited. */
const EDITED = ['display_name', 'status'];

export class FriendsPage {
  constructor(app) {
    this.app = app;
    const me = app.me;
    this.profileForm = form({'data-testid': 'profile-form'}, [
      field('Display name', 'display_name', {required: true}),
      field('Status', 'status', {placeholder: 'What are you up to?'}),
    ], 'Save profile', async (v) => {
      const current = app.names.profile(me) ?? {};
      const patch = {};
      for (const key of EDITED) {
        const value = v[key].trim();
        if (value === (current[key] ?? '')) continue;
        patch[key] = value === '' ? null : value;
      }
      if (Object.keys(patch).length === 0) return;
      await api('PATCH', '/v1/me/profile', patch);
    });
    this.requestForm = form({'data-testid': 'friend-request-form', class: 'inline'}, [
      field('Friend\'s account id', 'to', {required: true, pattern: '[0-9a-f]{32}',
        placeholder: '32 hex characters'}),
    ], 'Send request', async (v, el) => {
      await api('POST', '/v1/friends/requests', {to: v.to.trim()});
      el.reset();
      this.sent.textContent = 'Request sent.';
    });
    this.sent = h('p', {class: 'muted', 'data-testid': 'request-sent'});
    this.requestsEl = h('ul', {class: 'list', 'data-testid': 'requests'});
    this.friendsEl = h('ul', {class: 'list', 'data-testid': 'friends'});
    this.element = h('div', {class: 'columns'},
      h('section', {class: 'card'},
        h('h2', {}, 'You'),
        h('p', {}, 'Your account id (give it to friends): ',
          h('code', {'data-testid': 'my-id', class: 'copy', title: 'click to copy',
            onclick: () => navigator.clipboard?.writeText(me)}, me)),
        this.profileForm),
      h('section', {class: 'card'},
        h('h2', {}, 'Friends'),
        this.friendsEl,
        h('h3', {}, 'Requests'),
        this.requestsEl,
        h('h3', {}, 'Add a friend'),
        this.requestForm, this.sent));
  }

  /** Fills the profile form from the stored profile (not on every render: typing stays). */
  async reload() {
    const profile = this.app.names.profile(this.app.me) ?? {};
    for (const key of EDITED) this.profileForm.elements[key].value = profile[key] ?? '';
  }

  render() {
    const app = this.app;
    this.requestsEl.replaceChildren(...[...app.requests.keys()].map((id) =>
      h('li', {'data-testid': `request-${id}`}, who(app, id),
        h('span', {class: 'actions'},
          h('button', {'data-testid': `accept-${id}`,
            onclick: () => api('POST', `/v1/friends/requests/${id}/accept`)
              .then(() => { app.requests.delete(id); return app.reloadFriends(); })}, 'Accept'),
          h('button', {class: 'secondary',
            onclick: () => api('DELETE', `/v1/friends/requests/${id}`)
              .then(() => { app.requests.delete(id); app.render(); })}, 'Decline')))));
    if (app.requests.size === 0) this.requestsEl.append(h('li', {class: 'muted'}, 'None.'));
    this.friendsEl.replaceChildren(...app.friends.map((id) => {
      const profile = app.names.profile(id) ?? {};
      return h('li', {'data-testid': `friend-${id}`},
        who(app, id),
        h('span', {class: 'muted', 'data-testid': `friend-status-${id}`}, profile.status ?? ''),
        h('span', {class: 'actions'},
          h('button', {class: 'secondary',
            onclick: () => api('DELETE', `/v1/friends/${id}`).then(() => app.reloadFriends())},
          'Remove')));
    }));
    if (app.friends.length === 0) {
      this.friendsEl.append(h('li', {class: 'muted'}, 'No friends yet: send a request below.'));
    }
  }

  event(frame) {
    // The user's own profile changed (here or on another device): show what is stored.
    if (frame.type === 'profile.updated' && frame.data?.account_id === this.app.me) {
      const active = document.activeElement;
      if (!this.profileForm.contains(active)) this.reload();
    }
  }
}
