// Sign up (`POST /v1/accounts`) and log in (`POST /v1/sessions`). The session (account id
// and token) is kept in the page's localStorage, so a reload stays logged in.

import {api} from './api.js';
import {field, form, h} from './dom.js';

const KEY = 'chorus.session';

/** The stored session, or null. */
export function storedSession() {
  try {
    const s = JSON.parse(localStorage.getItem(KEY) ?? 'null');
    return s && typeof s.token === 'string' && typeof s.account_id === 'string' ? s : null;
  } catch {
    return null;
  }
}

export function storeSession(session) {
  if (session) localStorage.setItem(KEY, JSON.stringify(session));
  else localStorage.removeItem(KEY);
}

/** The page shown while logged out; `done(session)` once signed up or logged in. */
export function authPage(done) {
  const signup = form({'data-testid': 'signup'}, [
    field('Display name', 'display_name', {required: true, autocomplete: 'nickname'}),
    field('Email (optional)', 'email', {type: 'email', autocomplete: 'email'}),
    field('Password', 'password',
      {type: 'password', required: true, minlength: 8, autocomplete: 'new-password'}),
  ], 'Sign up', async (v) => {
    const profile = {display_name: v.display_name.trim()};
    if (v.email.trim()) profile.email = v.email.trim();
    const s = await api('POST', '/v1/accounts', {password: v.password, profile});
    done({account_id: s.account_id, token: s.token});
  });
  const login = form({'data-testid': 'login'}, [
    field('Account id, email or phone', 'login', {required: true, autocomplete: 'username'}),
    field('Password', 'password',
      {type: 'password', required: true, autocomplete: 'current-password'}),
  ], 'Log in', async (v) => {
    const s = await api('POST', '/v1/sessions', {login: v.login.trim(), password: v.password});
    done({account_id: s.account_id, token: s.token});
  });
  return h('main', {class: 'auth'},
    h('h1', {}, 'Chorus'),
    h('p', {class: 'muted'}, 'Friends, groups and communities, live.'),
    h('div', {class: 'columns'},
      h('section', {class: 'card'}, h('h2', {}, 'New here'), signup),
      h('section', {class: 'card'}, h('h2', {}, 'Welcome back'), login)));
}
