// Small DOM helpers: the client builds its pages with `h` instead of a framework or
// templates (the page's Content-Security-Policy allows no inline script).

/** Makes an element: `h('button', {class: 'x', onclick: f}, 'text', child)`. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'value') el.value = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** A form whose submit calls `onsubmit(values)`; shows its error under the fields. */
export function form(attrs, fields, submitLabel, onsubmit) {
  const error = h('p', {class: 'error', 'data-testid': `${attrs['data-testid'] ?? 'form'}-error`});
  const button = h('button', {type: 'submit'}, submitLabel);
  const el = h('form', {...attrs, class: `form ${attrs.class ?? ''}`}, fields, button, error);
  el.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    button.disabled = true;
    try {
      const values = Object.fromEntries(new FormData(el).entries());
      await onsubmit(values, el);
    } catch (e) {
      error.textContent = e.message ?? String(e);
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

/** A labelled input for `form`. */
export function field(label, name, attrs = {}) {
  return h('label', {}, h('span', {}, label), h('input', {name, ...attrs}));
}

/** A time of day (today) or a date and time. */
export function when(ms) {
  const d = new Date(ms);
  return d.toDateString() === new Date().toDateString()
    ? d.toLocaleTimeString()
    : d.toLocaleString();
}

/** An account id shortened for display (ids are 32 hex characters). */
export function shortId(id) {
  return id ? `${id.slice(0, 8)}…` : '';
}
