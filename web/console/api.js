// The public API, called with the signed-in user's bearer token; refusals become ApiErrors that say why.

export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super(describe(status, problem, retryAfter));
    this.status = status;
    this.problem = problem;
    this.retryAfter = retryAfter;
  }
}

// What a person should read for each problem `type` (docs/api.md); the server's `detail` follows.
const REFUSALS = {
  'payload-too-large': 'Too large',
  'unsupported-media-type': 'Unsupported type',
  'quota-exceeded': 'Over your storage quota',
  'invalid-media': 'Not a usable file',
  'rate-limited': 'Rate limited',
  'generation-quota-exceeded': 'Monthly generations used up',
  'too-many-projects': 'Too many projects',
  'not-found': 'Not found',
  'unauthorized': 'Not signed in',
  'validation-failed': 'Refused',
  'service-unavailable': 'Temporarily unavailable',
};

function describe(status, problem, retryAfter) {
  const label = REFUSALS[problem.type] || problem.title || `HTTP ${status}`;
  const detail = problem.detail ? `: ${problem.detail}` : '';
  const wait = retryAfter ? ` Try again in ${retryAfter} s.` : '';
  return `${label}${detail}${wait}`;
}

export async function errorOf(response) {
  let problem = {};
  try { problem = await response.json(); } catch { /* not JSON: the status says enough */ }
  const retryAfter = Number(response.headers.get('Retry-After')) || problem.retryAfter || null;
  return new ApiError(response.status, problem, retryAfter);
}

export class Api {
  constructor(token, base = '') {
    this.token = token;
    this.base = base;
  }

  get authorization() {
    return { Authorization: `Bearer ${this.token}` };
  }

  async request(method, path, { json, headers = {}, base = this.base } = {}) {
    const init = { method, headers: { ...this.authorization, ...headers } };
    if (json !== undefined) {
      init.body = JSON.stringify(json);
      init.headers['Content-Type'] = 'application/json';
    }
    let response;
    try {
      response = await fetch(`${base}${path}`, init);
    } catch (failure) {
      throw new ApiError(0, { title: 'The service cannot be reached', detail: String(failure.message || failure) });
    }
    if (!response.ok) throw await errorOf(response);
    return response.status === 204 ? null : response.json();
  }

  get(path, options) { return this.request('GET', path, options); }
  post(path, json, options) { return this.request('POST', path, { ...options, json }); }
  patch(path, json) { return this.request('PATCH', path, { json }); }
  delete(path) { return this.request('DELETE', path); }
}

// Before sign-in: what the page needs to know, and a development token when the deployment issues them.
export async function consoleConfig() {
  const response = await fetch('config');
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

export async function devToken(userId) {
  const response = await fetch('dev-token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ userId }),
  });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}
