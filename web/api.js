// The REST API (docs/api.md): one `api` call per request, the bearer token attached, every
// failure thrown as an `ApiError` carrying the contract's `{"error": {"code", "message"}}`.

/** A failed request: its HTTP status and the contract's error code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let token = null;
let onUnauthorized = () => {};

/** The token every later call sends, and what to do when the server no longer takes it. */
export function useToken(value, unauthorized) {
  token = value;
  if (unauthorized) onUnauthorized = unauthorized;
}

/** `method path` with a JSON `body`; answers the parsed JSON (null for 204). */
export async function api(method, path, body) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const error = json?.error;
    if (res.status === 401 && token && path !== '/v1/sessions') onUnauthorized();
    throw new ApiError(res.status, error?.code ?? `http_${res.status}`,
      error?.message ?? `${res.status} ${res.statusText}`);
  }
  return json;
}

/** `api`, but a 404 (a route this server does not have, say presence) answers `null`. */
export async function optional(method, path) {
  try {
    return await api(method, path);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}
