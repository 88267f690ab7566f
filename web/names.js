// Display names of accounts: known profiles (the user's own, friends', requesters') first,
// else fetched once with `GET /v1/accounts/{id}`; the page re-renders when one arrives.

import {api} from './api.js';
import {h, shortId} from './dom.js';

export class Names {
  constructor(changed) {
    this.changed = changed;
    /** Account id to `{profile, profile_version}`. */
    this.profiles = new Map();
    this.asked = new Set();
  }

  /** Records a profile seen anywhere (a newer version wins). */
  learn(accountId, profile, version = 0) {
    const known = this.profiles.get(accountId);
    if (known && known.profile_version > version) return;
    this.profiles.set(accountId, {profile: {...profile}, profile_version: version});
  }

  /** Applies a `profile.updated` event's changes (`null` clears a field). */
  update(accountId, version, changes) {
    const known = this.profiles.get(accountId);
    if (!known) return;
    if (known.profile_version >= version) return;
    for (const [key, value] of Object.entries(changes)) {
      if (value === null) delete known.profile[key];
      else known.profile[key] = value;
    }
    known.profile_version = version;
  }

  profile(accountId) {
    return this.profiles.get(accountId)?.profile;
  }

  /** The display name, or a short id while it is being fetched. */
  name(accountId) {
    const known = this.profiles.get(accountId);
    if (known?.profile?.display_name) return known.profile.display_name;
    if (!this.asked.has(accountId)) {
      this.asked.add(accountId);
      api('GET', `/v1/accounts/${encodeURIComponent(accountId)}`)
        .then((a) => {
          this.learn(a.account_id, a.profile, a.profile_version);
          this.changed();
        })
        .catch(() => {});
    }
    return shortId(accountId);
  }
}

/** A name with its presence dot and short id, for lists of accounts. */
export function who(app, id) {
  return h('span', {class: 'who'}, app.presenceDot(id),
    h('span', {class: 'name', 'data-testid': `name-${id}`}, app.names.name(id)),
    h('code', {class: 'id', title: id}, shortId(id)));
}
