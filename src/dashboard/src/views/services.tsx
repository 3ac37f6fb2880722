// The services table: every service of the project in one virtualised table. The list is one
// call; what each row shows beyond its name (status word, ready/desired, restarts, memory)
// comes from that service's status (and versions), asked only for the rows in view and
// refreshed while they stay there, so that 1,000 services cost what the visible 20 do.
import { useEffect, useRef, useState } from 'preact/hooks';
import { ago, bytes, call, get } from '../api';
import { useAction, useLoad } from '../hooks';
import { href } from '../router';
import { tarFolder } from '../tar';
import { Badge, Confirm, ErrorBox, Loading } from '../components/ui';
import { VirtualTable, type Column } from '../components/table';
import { docsUrl, internal, statusSince, statusWord, svcPath, type Service, type Status, type Versions } from '../model';

type Detail = {
  word: string;
  since: string | null;
  ready: number;
  desired: number;
  restarts: number;
  rss: number | null;
  shadows: number;
  at: number;
};

const REFRESH_MS = 5000;

async function detailOf(s: Service): Promise<Detail> {
  const st = await get<Status>(`${svcPath(s.name)}/status`);
  const restarts = st.instances.reduce((n, i) => n + (i.restarts ?? 0), 0);
  const live = st.instances.filter((i) => i.rss_bytes !== null && i.rss_bytes !== undefined);
  const rss = live.length ? live.reduce((n, i) => n + (i.rss_bytes ?? 0), 0) : null;
  const d: Detail = { word: '', since: null, ready: st.running, desired: st.desired, restarts, rss, shadows: 0, at: Date.now() };
  if (s.main_version) {
    const vs = await get<Versions>(`${svcPath(s.name)}/versions`);
    const main = vs.versions.find((v) => v.main);
    d.shadows = vs.versions.length - (main ? 1 : 0);
    if (main) {
      d.word = st.desired_running ? main.state : 'stopped';
      d.since = main.since;
      d.ready = main.ready;
      d.desired = main.desired;
      return d;
    }
  }
  d.word = statusWord(st);
  d.since = statusSince(st, d.word);
  return d;
}

// Create (when new), push the bundle as the version's tag, deploy the version: what
// `berth deploy NAME VERSION DIR` does.
export function DeployForm({ service, onDone }: { service?: string; onDone: (name: string) => void }) {
  const [name, setName] = useState(service ?? '');
  const [version, setVersion] = useState('');
  const [files, setFiles] = useState<File[]>([]);
  const [bundle, setBundle] = useState<File | null>(null);
  const [definition, setDefinition] = useState('');
  const [step, setStep] = useState('');
  const act = useAction();
  const ready = name.trim() && version.trim() && (files.length > 0 || bundle);
  return (
    <form
      class="card deploy"
      aria-label="Deploy a version"
      onSubmit={async (e) => {
        e.preventDefault();
        const n = name.trim();
        const v = version.trim();
        const ok = await act.run(async () => {
          let def: unknown;
          if (definition.trim()) {
            try {
              def = JSON.parse(definition);
            } catch (err) {
              throw new Error(`the definition is not JSON: ${(err as Error).message}`);
            }
          }
          setStep('checking the service…');
          const exists = await get(svcPath(n)).then(
            () => true,
            (err) => {
              if (err.status === 404) return false;
              throw err;
            },
          );
          if (!exists) {
            setStep(`creating ${n}…`);
            await call('POST', '/api/v1/services', { name: n });
          }
          const body = bundle ?? (await tarFolder(files));
          setStep(`uploading ${bytes(body.size)} and building…`);
          await call('PUT', `${svcPath(n)}/artifacts/${encodeURIComponent(v)}`, body);
          setStep(`deploying ${n} ${v}…`);
          await call('POST', `${svcPath(n)}/versions`, def ? { version: v, definition: def } : { version: v });
        });
        setStep('');
        if (ok) onDone(n);
      }}
    >
      <h2>Deploy a version</h2>
      <div class="form-grid">
        <label for="deploy-name">Service</label>
        <input id="deploy-name" value={name} disabled={!!service} placeholder="hello" onInput={(e) => setName(e.currentTarget.value)} />
        <label for="deploy-version">Version</label>
        <input id="deploy-version" value={version} placeholder="1.0.0" onInput={(e) => setVersion(e.currentTarget.value)} />
        <label for="deploy-folder">Folder</label>
        <input
          id="deploy-folder"
          type="file"
          multiple
          {...{ webkitdirectory: true }}
          onChange={(e) => {
            setFiles(Array.from(e.currentTarget.files ?? []));
            setBundle(null);
          }}
        />
        <label for="deploy-bundle">or a bundle</label>
        <input
          id="deploy-bundle"
          type="file"
          accept=".tar,.tgz,.gz,.zst,.tar.gz,.tar.zst"
          onChange={(e) => {
            setBundle(e.currentTarget.files?.[0] ?? null);
            setFiles([]);
          }}
        />
        <label for="deploy-def">Definition (JSON, optional)</label>
        <textarea id="deploy-def" rows={2} placeholder='{"replicas": 2}' value={definition} onInput={(e) => setDefinition(e.currentTarget.value)} />
      </div>
      <div class="row">
        <button type="submit" class="primary" disabled={!ready || act.busy}>
          Deploy
        </button>
        {files.length > 0 && <span class="muted">{files.length} files</span>}
        {step && (
          <span class="muted" aria-live="polite">
            {step}
          </span>
        )}
      </div>
      <ErrorBox error={act.error} />
    </form>
  );
}

export function ServicesView() {
  const list = useLoad((signal) => get<{ project: string; services: Service[] }>('/api/v1/services', { signal }), [], REFRESH_MS);
  const [details, setDetails] = useState(new Map<string, Detail>());
  const [filter, setFilter] = useState('');
  const [deploying, setDeploying] = useState(false);
  const [deleting, setDeleting] = useState<string | null>(null);
  const visible = useRef<Service[]>([]);
  const act = useAction();

  const refresh = async (rows: Service[], force = false) => {
    const now = Date.now();
    const stale = rows.filter((s) => {
      const d = details.get(s.name);
      return force || !d || now - d.at >= REFRESH_MS - 500;
    });
    if (!stale.length) return;
    const got = await Promise.all(stale.map((s) => detailOf(s).then((d) => [s.name, d] as const, () => null)));
    setDetails((old) => {
      const m = new Map(old);
      for (const g of got) if (g) m.set(g[0], g[1]);
      return m;
    });
  };
  // One timer for the view's life; it calls the newest `refresh` (which sees the newest details).
  const refreshRef = useRef(refresh);
  refreshRef.current = refresh;
  useEffect(() => {
    const t = setInterval(() => {
      if (document.visibilityState === 'visible') refreshRef.current(visible.current);
    }, REFRESH_MS);
    return () => clearInterval(t);
  }, []);

  const rows = (list.data?.services ?? []).filter((s) => !filter || s.name.includes(filter.trim()));
  // An action on one service: a failure names the action and the service; the list reloads.
  const actOn = async (what: string, name: string, f: () => Promise<unknown>, then?: () => void) => {
    if (await act.run(f)) then?.();
    else act.setError((e) => `${what} ${name}: ${e}`);
    list.reload();
  };

  const columns: Column<Service>[] = [
    {
      title: 'MAIN',
      width: '52px',
      cell: (s) =>
        s.main_version ? (
          <span class="main-marker" title={`MAIN version ${s.main_version}`}>
            *
          </span>
        ) : null,
    },
    { title: 'Name', cell: (s) => <a href={href('services', s.name)}>{s.name}</a> },
    {
      title: 'Version',
      cell: (s) => {
        const d = details.get(s.name);
        const v = s.main_version || (s.revision ? `rev ${s.revision}` : '-');
        return d && d.shadows > 0 ? `${v} (+${d.shadows} shadow${d.shadows > 1 ? 's' : ''})` : v;
      },
    },
    {
      title: 'Status',
      cell: (s) => {
        const d = details.get(s.name);
        if (!d) return <span class="muted">…</span>;
        return (
          <>
            <Badge state={d.word.startsWith('failed') ? 'failed' : d.word} title={d.word} /> <span class="muted">{d.since ? ago(d.since) : ''}</span>
          </>
        );
      },
    },
    {
      title: 'Ready',
      width: '70px',
      cell: (s) => {
        const d = details.get(s.name);
        return d ? `${d.ready}/${d.desired}` : '';
      },
    },
    { title: 'Restarts', width: '80px', cell: (s) => details.get(s.name)?.restarts ?? '' },
    {
      title: 'Memory',
      cell: (s) => {
        const d = details.get(s.name);
        const limit = s.definition?.['memory-limit'];
        if (!d) return '';
        return `${d.rss === null ? '-' : bytes(d.rss)}${limit ? ` / ${limit} MB` : ''}`;
      },
    },
    {
      title: 'Links',
      cell: (s) =>
        s.revision > 0 && !internal(s) ? (
          <span class="row-links">
            <a href={s.path + '/'} target="_blank" rel="noopener" aria-label={`open ${s.name}`}>
              open
            </a>{' '}
            <a href={docsUrl(s)} target="_blank" rel="noopener" aria-label={`API docs of ${s.name}`}>
              docs
            </a>
          </span>
        ) : null,
    },
    {
      title: 'Actions',
      cell: (s) => {
        const d = details.get(s.name);
        const stopped = d?.word === 'stopped';
        const path = svcPath(s.name);
        return (
          <span class="row-actions">
            {stopped ? (
              <button disabled={act.busy} aria-label={`start ${s.name}`} onClick={() => actOn('start', s.name, () => call('POST', `${path}/start`), () => refresh([s], true))}>
                Start
              </button>
            ) : (
              <button disabled={act.busy} aria-label={`stop ${s.name}`} onClick={() => actOn('stop', s.name, () => call('POST', `${path}/stop`), () => refresh([s], true))}>
                Stop
              </button>
            )}
            <button class="danger" aria-label={`delete ${s.name}`} onClick={() => setDeleting(s.name)}>
              Delete
            </button>
          </span>
        );
      },
    },
  ];

  return (
    <>
      <div class="section-head">
        <h1>Services</h1>
        <div class="row">
          <label class="sr-only" for="svc-filter">
            Filter services
          </label>
          <input id="svc-filter" type="search" placeholder="filter by name" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
          <button class="primary" aria-expanded={deploying} onClick={() => setDeploying(!deploying)}>
            Deploy…
          </button>
          <a class="button" href={href('templates')}>
            Add from a template
          </a>
        </div>
      </div>
      {deploying && (
        <DeployForm
          onDone={() => {
            setDeploying(false);
            list.reload();
          }}
        />
      )}
      <ErrorBox error={act.error || list.error} />
      {list.loading && !list.data ? (
        <Loading what="services" />
      ) : rows.length === 0 ? (
        <p class="muted">
          {filter
            ? `No service matches “${filter}”.`
            : `No services in project ${list.data?.project ?? ''} yet. Deploy a folder above, or add one from a template.`}
        </p>
      ) : (
        <>
          <p class="muted">
            {rows.length} service{rows.length === 1 ? '' : 's'} in project {list.data?.project}
          </p>
          <VirtualTable
            label="Services"
            rows={rows}
            columns={columns}
            rowKey={(s) => s.name}
            height={Math.max(300, innerHeight - 220)}
            onVisible={(v) => {
              visible.current = v;
              refresh(v);
            }}
          />
        </>
      )}
      {deleting && (
        <Confirm
          question={`Delete ${deleting}? Its instances stop and its versions, revisions and artifacts are removed.`}
          yes="Delete"
          onAnswer={(ok) => {
            const name = deleting;
            setDeleting(null);
            if (ok) actOn('delete', name, () => call('DELETE', svcPath(name)));
          }}
        />
      )}
    </>
  );
}
