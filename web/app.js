// The Chorus web client: the page's shell (header, tabs, connection state), the state every
// page shares (the user's profile, friends, presence, known groups), the routing by
// `location.hash`, and the dispatch of live events to the page shown. Each page is a module:
// friends.js, groups.js, activities.js; auth.js while logged out.

import {api, optional, useToken} from './api.js';
import {authPage, storeSession, storedSession} from './auth.js';
import {h} from './dom.js';
import {FriendsPage} from './friends.js';
import {GroupsPage, GroupPage} from './groups.js';
import {ActivityPage} from './activities.js';
import {Live, helloGroups} from './live.js';
import {Names} from './names.js';

class App {
  constructor(root) {
    this.root = root;
    this.page = null;
    window.addEventListener('hashchange', () => this.route());
  }

  /** Logged out: the sign-up and login page. */
  showAuth() {
    this.root.replaceChildren(authPage((session) => {
      storeSession(session);
      this.start(session);
    }));
  }

  /** Logged in: the live connection, the shared state, then the page the hash names. */
  async start(session) {
    this.session = session;
    this.me = session.account_id;
    useToken(session.token, () => this.logout(false));
    this.names = new Names(() => this.render());
    /** Friend ids, newest friendship first. */
    this.friends = [];
    /** Incoming friend requests: account id to the requester's public profile. */
    this.requests = new Map();
    /** Account id to `{online, devices}`, from `presence.changed` and `online` fields. */
    this.presence = new Map();
    /** Whether this server reports presence at all (revision 2 servers with presence). */
    this.hasPresence = false;
    this.groups = new Set(this.storedGroups());
    /** Community id to its name, as binding requests and approvals tell it. */
    this.communities = new Map();
    this.status = 'connecting';
    this.statusEl = h('span', {class: 'status connecting', 'data-testid': 'connection'}, 'connecting');
    this.meEl = h('span', {class: 'me', 'data-testid': 'me-name'});
    this.main = h('main', {});
    const tab = (hash, label) => h('a', {href: hash, 'data-tab': hash}, label);
    this.nav = h('nav', {}, tab('#/friends', 'Friends'), tab('#/groups', 'Groups'),
      tab('#/activity', 'Activity'));
    this.root.replaceChildren(
      h('header', {},
        h('strong', {class: 'brand'}, 'Chorus'), this.nav, h('span', {class: 'spacer'}),
        this.meEl, this.statusEl,
        h('button', {class: 'link', 'data-testid': 'logout', onclick: () => this.logout(true)},
          'Log out')),
      this.main);
    this.live = new Live(session.token, {
      event: (frame) => this.event(frame),
      hello: (frame, resumed) => this.hello(frame, resumed),
      resync: () => this.reload(),
      status: (s) => this.setStatus(s),
      refused: () => api('GET', '/v1/me').catch(() => {}),
    });
    // A handle for tests and the curious: `chorus.live.drop()` simulates a network drop.
    window.chorus = {app: this, live: this.live};
    // Live first, then the state over HTTP: an event between the two is then not lost.
    this.live.start();
    try {
      await this.reload();
    } catch (e) {
      if (e.status === 401) return;
      throw e;
    }
    this.route();
  }

  /** Reloads the shared state over HTTP (at start, and when told to resync). */
  async reload() {
    const me = await api('GET', '/v1/me');
    this.names.learn(me.account_id, me.profile, me.profile_version);
    await this.loadFriends();
    const requests = await api('GET', '/v1/friends/requests?limit=200');
    this.requests = new Map(requests.items.map((r) => [r.account_id, r.profile]));
    for (const r of requests.items) this.names.learn(r.account_id, r.profile, r.profile_version);
    await this.page?.reload?.();
    this.render();
  }

  hello(frame, resumed) {
    for (const [gid] of helloGroups(frame)) this.knowGroup(gid);
    if (!resumed) this.render();
  }

  /** A live event: the shared state first, then the page shown. */
  event(frame) {
    const data = frame.data ?? {};
    switch (frame.type) {
      case 'profile.updated':
        this.names.update(data.account_id, data.profile_version, data.changes ?? {});
        break;
      case 'friend.requested':
        this.requests.set(data.account_id, data.profile);
        this.names.learn(data.account_id, data.profile ?? {}, 0);
        break;
      case 'friend.added':
        this.requests.delete(data.account_id);
        this.reloadFriends();
        break;
      case 'friend.removed':
        this.friends = this.friends.filter((id) => id !== data.account_id);
        break;
      case 'presence.changed':
        this.hasPresence = true;
        this.presence.set(data.account_id, {online: data.online, devices: data.devices});
        break;
      default:
        break;
    }
    if (typeof frame.group_id === 'string') this.knowGroup(frame.group_id);
    if (typeof data.group_id === 'string' && frame.type === 'binding.requested') {
      this.knowGroup(data.group_id);
    }
    this.page?.event?.(frame);
    this.render();
  }

  async reloadFriends() {
    await this.loadFriends();
    this.render();
  }

  /** The friend list, with each friend's name and presence (`online`, `devices`). */
  async loadFriends() {
    const friends = await api('GET', '/v1/friends?limit=200');
    this.friends = friends.items.map((f) => f.account_id);
    for (const f of friends.items) {
      this.names.learn(f.account_id, f.profile, f.profile_version);
      if (typeof f.online === 'boolean') {
        this.hasPresence = true;
        this.presence.set(f.account_id, {online: f.online, devices: f.devices});
      }
    }
  }

  /** Whether `id` is online, or undefined when this server reports no presence. */
  online(id) {
    if (!this.hasPresence) return undefined;
    return this.presence.get(id)?.online ?? false;
  }

  /** A presence dot for `id` (nothing without presence). */
  presenceDot(id) {
    const online = this.online(id);
    if (online === undefined) return null;
    return h('span', {class: `dot ${online ? 'on' : 'off'}`, title: online ? 'online' : 'offline',
      'data-testid': `presence-${id}`, 'data-online': String(online)});
  }

  storedGroups() {
    try {
      const list = JSON.parse(localStorage.getItem(`chorus.groups.${this.me}`) ?? '[]');
      return Array.isArray(list) ? list.filter((g) => typeof g === 'string') : [];
    } catch {
      return [];
    }
  }

  /** Remembers a group the user belongs to (created, opened, or seen in an event). */
  knowGroup(gid) {
    if (this.groups.has(gid)) return;
    this.groups.add(gid);
    localStorage.setItem(`chorus.groups.${this.me}`, JSON.stringify([...this.groups]));
  }

  forgetGroup(gid) {
    this.groups.delete(gid);
    localStorage.setItem(`chorus.groups.${this.me}`, JSON.stringify([...this.groups]));
  }

  setStatus(status) {
    this.status = status;
    this.statusEl.className = `status ${status}`;
    this.statusEl.textContent = status;
  }

  /** Shows the page `location.hash` names. */
  route() {
    const hash = location.hash || '#/friends';
    const group = hash.match(/^#\/groups\/([0-9a-f]{32})$/);
    let page;
    if (group) page = new GroupPage(this, group[1]);
    else if (hash === '#/groups') page = new GroupsPage(this);
    else if (hash === '#/activity') page = new ActivityPage(this);
    else page = new FriendsPage(this);
    this.page = page;
    for (const a of this.nav.querySelectorAll('a')) {
      a.classList.toggle('active', hash.startsWith(a.dataset.tab));
    }
    this.main.replaceChildren(page.element);
    Promise.resolve(page.reload?.()).then(() => this.render(), (e) => page.failed?.(e));
  }

  /** Re-renders what depends on shared state (the forms keep what is typed). */
  render() {
    if (!this.names) return;
    this.meEl.textContent = this.names.name(this.me);
    this.page?.render?.();
  }

  async logout(tellServer) {
    if (tellServer) await optional('DELETE', '/v1/sessions/current').catch(() => {});
    this.live?.stop();
    storeSession(null);
    useToken(null);
    this.page = null;
    location.hash = '';
    this.showAuth();
  }
}

const app = new App(document.getElementById('app'));
const session = storedSession();
if (session) app.start(session);
else app.showAuth();
