// The dashboard's one door to the daemon: the native API with the login cookie (HttpOnly, so
// no script can read it) and X-Berth-Request on every change (the daemon refuses a cookie-
// authenticated change without it: another site's page cannot send it). Errors carry the
// server's own message, which the views show as they are.

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
    public code = '',
  ) {
    super(message);
  }
}

let project = localStorage.getItem('berth.project') || '';

// The project the views act on; '' lets the daemon choose (a project token's own, an admin
// token's `default`).
export function currentProject(): string {
  return project;
}

export function setProject(p: string) {
  project = p;
  localStorage.setItem('berth.project', p);
}

// `path` with ?project= (or &project=) of the current project when one is chosen.
export function withProject(path: string, p = project): string {
  if (!p) return path;
  return path + (path.includes('?') ? '&' : '?') + 'project=' + encodeURIComponent(p);
}

async function errorOf(r: Response): Promise<ApiError> {
  const text = await r.text();
  try {
    const body = JSON.parse(text);
    if (body && body.error && typeof body.error.message === 'string') {
      return new ApiError(r.status, body.error.message, body.error.code || '');
    }
  } catch {
    // not JSON: the text itself is the message
  }
  return new ApiError(r.status, text.trim() || `${r.status} ${r.statusText}`);
}

export type Body = unknown;

// One API call. `body` is sent as JSON, except a Blob/File (bundles) sent as it is.
export async function call<T = any>(
  method: string,
  path: string,
  body?: Body,
  opts: { project?: string | null; signal?: AbortSignal } = {},
): Promise<T> {
  const p = opts.project === null ? '' : (opts.project ?? project);
  const headers: Record<string, string> = { Accept: 'application/json' };
  let payload: BodyInit | undefined;
  if (method !== 'GET') headers['X-Berth-Request'] = '1';
  if (body instanceof Blob) {
    headers['Content-Type'] = 'application/octet-stream';
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let r: Response;
  try {
    r = await fetch(withProject(path, p), {
      method,
      headers,
      body: payload,
      credentials: 'same-origin',
      signal: opts.signal,
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, `the daemon did not answer (${(e as Error).message})`);
  }
  if (!r.ok) {
    const err = await errorOf(r);
    if (r.status === 401) onUnauthenticated(err.message);
    throw err;
  }
  const type = r.headers.get('content-type') || '';
  if (type.includes('json')) return (await r.json()) as T;
  return (await r.text()) as unknown as T;
}

export const get = <T = any>(path: string, opts?: { project?: string | null; signal?: AbortSignal }) =>
  call<T>('GET', path, undefined, opts);

let unauthenticated: (message: string) => void = () => {};
function onUnauthenticated(message: string) {
  unauthenticated(message);
}
export function onLoggedOut(f: (message: string) => void) {
  unauthenticated = f;
}

// Reads a streamed answer (NDJSON logs, server-sent events) line by line until `signal`
// aborts it or the daemon ends it.
export async function stream(
  path: string,
  onLine: (line: string) => void,
  signal: AbortSignal,
  headers: Record<string, string> = {},
): Promise<void> {
  const r = await fetch(withProject(path), { credentials: 'same-origin', signal, headers });
  if (!r.ok) throw await errorOf(r);
  const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
  let rest = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    rest += value;
    let nl: number;
    while ((nl = rest.indexOf('\n')) >= 0) {
      onLine(rest.slice(0, nl));
      rest = rest.slice(nl + 1);
    }
  }
  if (rest) onLine(rest);
}

export type WhoAmI = { token_id: string; admin: boolean; project: string | null };

export async function login(token: string): Promise<WhoAmI> {
  const r = await fetch('/_berth/login', {
    method: 'POST',
    headers: { Accept: 'application/json', 'Content-Type': 'application/x-www-form-urlencoded' },
    body: 'token=' + encodeURIComponent(token) + '&next=%2F',
    credentials: 'same-origin',
  });
  if (!r.ok) throw await errorOf(r);
  return (await r.json()) as WhoAmI;
}

export async function logout(): Promise<void> {
  await fetch('/_berth/logout', { method: 'POST', credentials: 'same-origin' });
}

// "3 min ago" for an ISO time; '' for none.
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}
