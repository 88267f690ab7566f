// The groups: a list of the user's groups (create one, open one by id) and a group's page:
// its members (added by the owner; presence when the server reports it), its chat
// (`group.message`), the dynamics of the communities bound to it (`group.dynamic`, and
// `GET /v1/groups/{gid}/dynamics`), and, for the owner, the pending binding requests to
// approve or reject (`binding.requested`).

import {api, ApiError, optional} from './api.js';
import {field, form, h, shortId, when} from './dom.js';
import {who} from './names.js';

export class GroupsPage {
  constructor(app) {
    this.app = app;
    /** Group id to its record, or null while loading. */
    this.info = new Map();
    const create = form({'data-testid': 'create-group', class: 'inline'}, [
      field('Name', 'name', {required: true, maxlength: 128}),
    ], 'Create group', async (v) => {
      const g = await api('POST', '/v1/groups', {name: v.name.trim()});
      app.knowGroup(g.group_id);
      location.hash = `#/groups/${g.group_id}`;
    });
    const open = form({'data-testid': 'open-group', class: 'inline'}, [
      field('Group id', 'gid', {required: true, pattern: '[0-9a-f]{32}'}),
    ], 'Open', async (v) => {
      location.hash = `#/groups/${v.gid.trim()}`;
    });
    this.listEl = h('ul', {class: 'list', 'data-testid': 'groups'});
    this.element = h('div', {class: 'columns'},
      h('section', {class: 'card'}, h('h2', {}, 'Your groups'), this.listEl),
      h('section', {class: 'card'}, h('h2', {}, 'New group'), create,
        h('h3', {}, 'Open a group you were added to'), open));
  }

  async reload() {
    await Promise.all([...this.app.groups].map(async (gid) => {
      try {
        this.info.set(gid, await api('GET', `/v1/groups/${gid}`));
      } catch (e) {
        if (e instanceof ApiError && (e.status === 403 || e.status === 404)) {
          this.app.forgetGroup(gid);
        }
      }
    }));
  }

  render() {
    const gids = [...this.app.groups];
    this.listEl.replaceChildren(...gids.map((gid) => {
      const g = this.info.get(gid);
      return h('li', {}, h('a', {href: `#/groups/${gid}`, 'data-testid': `group-link-${gid}`},
        g?.name ?? shortId(gid)), g ? h('span', {class: 'muted'}, `${g.members.length} members`) : null);
    }));
    if (gids.length === 0) this.listEl.append(h('li', {class: 'muted'}, 'None yet.'));
  }

  event(frame) {
    if (typeof frame.group_id === 'string' && !this.info.has(frame.group_id)) this.reload();
  }
}

export class GroupPage {
  constructor(app, gid) {
    this.app = app;
    this.gid = gid;
    this.group = null;
    this.messages = new Map();
    this.dynamics = new Map();
    this.requests = new Map();
    this.titleEl = h('h2', {'data-testid': 'group-name'}, shortId(gid));
    this.errorEl = h('p', {class: 'error'});
    this.membersEl = h('ul', {class: 'list', 'data-testid': 'members'});
    this.addMember = form({'data-testid': 'add-member', class: 'inline'}, [
      h('label', {}, h('span', {}, 'Add a member'), h('select', {name: 'friend'})),
      field('or an account id', 'account_id', {pattern: '[0-9a-f]{32}'}),
    ], 'Add', async (v, el) => {
      const id = v.account_id.trim() || v.friend;
      if (!id) throw new Error('choose a friend or give an account id');
      await api('POST', `/v1/groups/${gid}/members`, {account_id: id});
      el.reset();
      await this.loadGroup();
      this.render();
    });
    this.bindingsEl = h('ul', {class: 'list', 'data-testid': 'bindings'});
    this.requestsEl = h('ul', {class: 'list', 'data-testid': 'binding-requests'});
    this.requestsBox = h('div', {hidden: true}, h('h3', {}, 'Binding requests'), this.requestsEl);
    this.chatEl = h('ol', {class: 'chat', 'data-testid': 'messages'});
    const send = form({'data-testid': 'send-message', class: 'inline'}, [
      h('input', {name: 'text', required: true, maxlength: 4096, placeholder: 'Message',
        autocomplete: 'off'}),
    ], 'Send', async (v, el) => {
      await api('POST', `/v1/groups/${gid}/messages`, {text: v.text});
      el.reset();
    });
    this.dynamicsEl = h('ol', {class: 'feed', 'data-testid': 'dynamics'});
    this.element = h('div', {},
      h('p', {}, h('a', {href: '#/groups'}, '← Groups')),
      this.titleEl,
      h('p', {class: 'muted'}, 'Group id (members open it with this): ',
        h('code', {'data-testid': 'group-id', class: 'copy', title: 'click to copy',
          onclick: () => navigator.clipboard?.writeText(gid)}, gid)),
      this.errorEl,
      h('div', {class: 'columns three'},
        h('section', {class: 'card'}, h('h3', {}, 'Members'), this.membersEl, this.addMember,
          h('h3', {}, 'Bound communities'), this.bindingsEl, this.requestsBox),
        h('section', {class: 'card'}, h('h3', {}, 'Chat'), this.chatEl, send),
        h('section', {class: 'card'}, h('h3', {}, 'Community dynamics'), this.dynamicsEl)));
  }

  get owner() {
    return this.group?.owner === this.app.me;
  }

  async reload() {
    await this.loadGroup();
    this.app.knowGroup(this.gid);
    const [messages, dynamics] = await Promise.all([
      api('GET', `/v1/groups/${this.gid}/messages?limit=100`),
      api('GET', `/v1/groups/${this.gid}/dynamics?limit=100`),
      this.loadRequests(),
      this.loadPresence(),
    ]);
    for (const m of messages.items) this.messages.set(m.message_id, m);
    this.dynamics = new Map(dynamics.items.map((d) => [d.dynamic_id, d]));
  }

  failed(e) {
    this.errorEl.textContent = e.status === 403
      ? 'You are not a member of this group.' : `Could not load the group: ${e.message}`;
    if (e.status === 403 || e.status === 404) this.app.forgetGroup(this.gid);
  }

  async loadGroup() {
    this.group = await api('GET', `/v1/groups/${this.gid}`);
  }

  async loadRequests() {
    if (!this.owner) return;
    const r = await api('GET', `/v1/groups/${this.gid}/binding-requests?limit=200`);
    this.requests = new Map(r.items.map((q) => [q.request_id, q]));
    for (const q of r.items) this.app.communities.set(q.community_id, q.community_name);
  }

  /** `GET /v1/groups/{gid}/presence` where the server has it (its absence is no error). */
  async loadPresence() {
    const p = await optional('GET', `/v1/groups/${this.gid}/presence`).catch(() => null);
    if (!p) return;
    const list = p.items ?? p.online ?? p.members ?? [];
    const online = new Map(list.map((x) => (typeof x === 'string' ? [x, {}] : [x.account_id, x])));
    this.app.hasPresence = true;
    for (const id of this.group?.members ?? []) {
      const entry = online.get(id);
      this.app.presence.set(id, {online: Boolean(entry), devices: entry?.devices});
    }
  }

  render() {
    const app = this.app;
    const g = this.group;
    if (!g) return;
    this.titleEl.textContent = g.name;
    this.membersEl.replaceChildren(...g.members.map((id) => h('li', {'data-testid': `member-${id}`},
      who(app, id), id === g.owner ? h('span', {class: 'badge'}, 'owner') : null)));
    this.bindingsEl.replaceChildren(...g.bindings.map((cid) => h('li', {'data-testid': `binding-${cid}`},
      h('span', {}, app.communities.get(cid) ?? 'Community', ' ', h('code', {title: cid}, shortId(cid))),
      this.owner ? h('span', {class: 'actions'}, h('button', {class: 'secondary',
        onclick: () => this.act(() => api('DELETE', `/v1/groups/${this.gid}/bindings/${cid}`))},
      'Unbind')) : null)));
    if (g.bindings.length === 0) this.bindingsEl.append(h('li', {class: 'muted'}, 'None.'));
    this.addMember.hidden = !this.owner;
    this.requestsBox.hidden = !this.owner;
    if (this.owner) this.renderOwner();
    const messages = [...this.messages.values()].sort((a, b) => a.created_ms - b.created_ms);
    const atBottom = this.chatEl.scrollTop + this.chatEl.clientHeight >= this.chatEl.scrollHeight - 8;
    this.chatEl.replaceChildren(...messages.map((m) => h('li', {'data-testid': 'message',
      class: m.account_id === app.me ? 'mine' : ''},
    h('span', {class: 'author'}, app.names.name(m.account_id)),
    h('span', {class: 'text'}, m.text), h('time', {}, when(m.created_ms)))));
    if (atBottom) this.chatEl.scrollTop = this.chatEl.scrollHeight;
    const dynamics = [...this.dynamics.values()].sort((a, b) => b.created_ms - a.created_ms);
    this.dynamicsEl.replaceChildren(...dynamics.map((d) => h('li', {'data-testid': 'dynamic'},
      h('span', {class: 'badge'}, d.kind), ' ',
      h('span', {class: 'author'}, app.names.name(d.account_id)), ' ',
      h('span', {class: 'text'}, d.text),
      h('time', {}, when(d.created_ms)))));
    if (dynamics.length === 0) {
      this.dynamicsEl.append(h('li', {class: 'muted'},
        'Nothing yet: dynamics of bound communities show here as they happen.'));
    }
  }

  renderOwner() {
    const requests = [...this.requests.values()];
    this.requestsEl.replaceChildren(...requests.map((q) => h('li', {'data-testid': `binding-request-${q.community_id}`},
      h('span', {}, h('strong', {}, q.community_name ?? shortId(q.community_id)),
        q.note ? h('span', {class: 'muted'}, ` “${q.note}”`) : null),
      h('span', {class: 'actions'},
        h('button', {'data-testid': `approve-${q.community_id}`,
          onclick: () => this.act(() => api('POST',
            `/v1/groups/${this.gid}/binding-requests/${q.request_id}/approve`))}, 'Approve'),
        h('button', {class: 'secondary', 'data-testid': `reject-${q.community_id}`,
          onclick: () => this.act(() => api('POST',
            `/v1/groups/${this.gid}/binding-requests/${q.request_id}/reject`))}, 'Reject')))));
    if (requests.length === 0) this.requestsEl.append(h('li', {class: 'muted'}, 'None pending.'));
    const select = this.addMember.elements.friend;
    const chosen = select.value;
    const candidates = this.app.friends.filter((id) => !this.group.members.includes(id));
    select.replaceChildren(h('option', {value: ''}, '— a friend —'),
      ...candidates.map((id) => h('option', {value: id}, this.app.names.name(id))));
    select.value = candidates.includes(chosen) ? chosen : '';
  }

  /** An owner's action, then the group, its requests and its dynamics again. */
  async act(call) {
    this.errorEl.textContent = '';
    try {
      await call();
      await this.loadGroup();
      await this.loadRequests();
      const d = await api('GET', `/v1/groups/${this.gid}/dynamics?limit=100`);
      this.dynamics = new Map(d.items.map((x) => [x.dynamic_id, x]));
    } catch (e) {
      this.errorEl.textContent = e.message;
    }
    this.render();
  }

  event(frame) {
    const data = frame.data ?? {};
    const ours = frame.group_id === this.gid || data.group_id === this.gid;
    if (!ours) return;
    switch (frame.type) {
      case 'group.message':
        this.messages.set(data.message_id, data);
        break;
      case 'group.dynamic':
        this.dynamics.set(data.dynamic_id, data);
        break;
      case 'binding.requested':
        this.requests.set(data.request_id, data);
        this.app.communities.set(data.community_id, data.community_name);
        break;
      case 'binding.rejected':
        this.requests.delete(data.request_id);
        break;
      case 'binding.approved':
        this.app.communities.set(data.community_id, data.community_name);
        this.act(async () => {});
        break;
      case 'binding.revoked':
        this.act(async () => {});
        break;
      default:
        break;
    }
  }
}
