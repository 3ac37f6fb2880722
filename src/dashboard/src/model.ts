// The shapes of the native API's answers the service views read, and the status word the CLI
// prints (`berth services ls`), computed the same way so that both say the same thing.

export type Definition = Record<string, any> & {
  'container-tag'?: string | null;
  'memory-limit'?: number | null;
  replicas?: number;
};

export type Service = {
  name: string;
  project: string;
  path: string;
  url: string;
  created_at: string;
  updated_at: string;
  revision: number;
  main_version: string;
  definition: Definition | null;
};

export type Instance = {
  id: string;
  version?: string;
  revision: number;
  state: string;
  pid?: number;
  host?: string;
  port?: number;
  started_at?: string | null;
  restarts?: number;
  exit_code?: number | null;
  signal?: number | null;
  rss_bytes?: number | null;
  health?: string;
};

export type ServiceEventRow = { time: string; kind: string; message: string };

export type Status = {
  name: string;
  project: string;
  desired_running: boolean;
  revision: number;
  active_revision?: number;
  failed_revision?: number;
  desired: number;
  running: number;
  instances: Instance[];
  events: ServiceEventRow[];
};

export type Version = {
  version: string;
  revision: number;
  main: boolean;
  state: string;
  ready: number;
  desired: number;
  since: string | null;
  created_at: string;
};

export type Versions = { name: string; main: string; versions: Version[] };

export type LogLine = { time: string; stream: string; message: string; instance: string; revision: number };

function eventStartingWith(st: Status, starts: string[]): string {
  for (const e of st.events) if (starts.some((s) => e.message.startsWith(s))) return e.message;
  return '';
}

// Why the newest revision cannot run, from its events ('' when nothing says so).
export function cannotRun(st: Status): string {
  return eventStartingWith(st, [`revision ${st.revision} cannot run`]);
}

export function statusWord(st: Status): string {
  if (!st.desired_running) return 'stopped';
  if (st.revision === 0) return 'no definition yet';
  const active = st.active_revision ?? 0;
  const why = cannotRun(st);
  if (why && active === 0) return 'failed: ' + why;
  if (st.instances.some((i) => i.state === 'crash-looping' && (active === 0 || i.revision === active)))
    return 'crash-looping';
  if (st.desired === 0) return 'scaled to 0';
  return st.running >= st.desired ? 'running' : 'starting';
}

// Since when the service is as its word says: the oldest running instance of the live
// revision while running, else its newest event.
export function statusSince(st: Status, word: string): string | null {
  if (word === 'running') {
    let since = '';
    for (const i of st.instances)
      if (i.state === 'running' && i.started_at && i.revision === st.active_revision && (!since || i.started_at < since))
        since = i.started_at;
    return since || null;
  }
  return st.events.length ? st.events[0].time : null;
}

// A service's resource in the native API.
export const svcPath = (name: string) => `/api/v1/services/${encodeURIComponent(name)}`;

// The link a service's API docs live at (the SDKs serve /docs under the service's path).
export function docsUrl(s: Service): string {
  return s.path.replace(/\/?$/, '/') + 'docs';
}

// `expose: internal` services (Redis, Postgres) have no gateway route: no link to open them.
export function internal(s: Service): boolean {
  return s.definition?.expose === 'internal';
}
