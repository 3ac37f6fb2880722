// One service, in tabs: overview (instances and events), versions and revisions (assign,
// kill, roll back, deploy another), live logs, runtime parameters, gateway figures and the
// service's own API docs. Each tab asks only for what it shows; the overview and versions
// refresh every 2 s and at once when the event stream says the service changed.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ago, ApiError, bytes, call, get, stream } from '../api';
import { subscribe } from '../events';
import { useAction, useLoad } from '../hooks';
import { go, href } from '../router';
import { Badge, Choice, Confirm, ErrorBox, Head, Loading, Section } from '../components/ui';
import { DeployForm } from './services';
import { docsUrl, internal, statusSince, statusWord, svcPath, type LogLine, type Service, type Status, type Versions } from '../model';

const TABS: [string, string][] = [
  ['overview', 'Overview'],
  ['versions', 'Versions'],
  ['logs', 'Logs'],
  ['parameters', 'Parameters'],
  ['metrics', 'Metrics'],
  ['docs', 'API docs'],
];

// Reloads `reload` whenever the event stream reports a change of service `name`.
function useServiceEvents(name: string, reload: () => void) {
  useEffect(() => subscribe({ service: (e) => e.service === name && reload() }), [name]);
}

function Overview({ svc }: { svc: Service }) {
  const st = useLoad((signal) => get<Status>(`${svcPath(svc.name)}/status`, { signal }), [svc.name], 2000);
  useServiceEvents(svc.name, st.reload);
  const act = useAction();
  if (!st.data) return st.error ? <ErrorBox error={st.error} /> : <Loading what="status" />;
  const s = st.data;
  const word = statusWord(s);
  const since = statusSince(s, word);
  return (
    <>
      <dl class="kv">
        <dt>Status</dt>
        <dd>
          <Badge state={word.startsWith('failed') ? 'failed' : word} /> {word.startsWith('failed') ? word : ''}{' '}
          <span class="muted">{since ? `since ${ago(since)}` : ''}</span>
        </dd>
        <dt>Instances</dt>
        <dd>
          {s.running}/{s.desired} ready
        </dd>
        <dt>Revision</dt>
        <dd>
          {s.revision} (serving: {s.active_revision || 'none'}){s.failed_revision ? `; revision ${s.failed_revision} was rolled back` : ''}
        </dd>
        <dt>Address</dt>
        <dd>
          {internal(svc) ? (
            <>
              internal only (no gateway route):{' '}
              <span class="mono">
                {s.instances
                  .filter((i) => i.state === 'running' && i.host)
                  .map((i) => `${i.host}:${i.port}`)
                  .join(', ') || 'no instance running'}
              </span>
            </>
          ) : (
            <a href={svc.path + '/'} target="_blank" rel="noopener">
              {svc.url}
            </a>
          )}
        </dd>
      </dl>
      <div class="row">
        {s.desired_running ? (
          <button disabled={act.busy} onClick={() => act.run(() => call('POST', `${svcPath(svc.name)}/stop`)).then(st.reload)}>
            Stop service
          </button>
        ) : (
          <button disabled={act.busy} onClick={() => act.run(() => call('POST', `${svcPath(svc.name)}/start`)).then(st.reload)}>
            Start service
          </button>
        )}
      </div>
      <ErrorBox error={act.error || st.error} />
      <Section title="Instances">
        {s.instances.length === 0 ? (
          <p class="muted">No instances.</p>
        ) : (
          <table aria-label="Instances">
            <Head cols={['Instance', 'Version', 'State', 'Address', 'PID', 'Started', 'Restarts', 'Last exit', 'Memory', 'Health']} />
            <tbody>
              {s.instances.map((i) => (
                <tr key={i.id}>
                  <td class="mono">{i.id}</td>
                  <td>{i.version ?? i.revision}</td>
                  <td>
                    <Badge state={i.state} />
                  </td>
                  <td class="mono">{i.host ? `${i.host}:${i.port}` : ''}</td>
                  <td>{i.pid ?? ''}</td>
                  <td>{ago(i.started_at)}</td>
                  <td>{i.restarts ?? 0}</td>
                  <td>{i.signal ? `signal ${i.signal}` : i.exit_code !== null && i.exit_code !== undefined ? `code ${i.exit_code}` : ''}</td>
                  <td>{bytes(i.rss_bytes)}</td>
                  <td>{i.health ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
      <Section title="Events">
        <ul class="events">
          {s.events.map((e) => (
            <li>
              <time dateTime={e.time} title={e.time}>
                {ago(e.time)}
              </time>{' '}
              <span class="muted">{e.kind}</span> {e.message}
            </li>
          ))}
        </ul>
      </Section>
    </>
  );
}

type Revision = { revision: number; created_at: string; definition: Record<string, unknown> };

function VersionsTab({ svc, onChange }: { svc: Service; onChange: () => void }) {
  const vs = useLoad((signal) => get<Versions>(`${svcPath(svc.name)}/versions`, { signal }), [svc.name], 2000);
  const revs = useLoad((signal) => get<{ revisions: Revision[] }>(`${svcPath(svc.name)}/revisions`, { signal }), [svc.name]);
  useServiceEvents(svc.name, vs.reload);
  const act = useAction();
  const [killing, setKilling] = useState<string | null>(null);
  const [deploying, setDeploying] = useState(false);
  const versioned = !!svc.main_version || (vs.data?.versions.length ?? 0) > 0;
  const done = () => {
    vs.reload();
    revs.reload();
    onChange();
  };
  return (
    <>
      <Section
        title="Versions"
        actions={
          <button aria-expanded={deploying} onClick={() => setDeploying(!deploying)}>
            Deploy a version…
          </button>
        }
      >
        {deploying && (
          <DeployForm
            service={svc.name}
            onDone={() => {
              setDeploying(false);
              done();
            }}
          />
        )}
        <ErrorBox error={act.error || vs.error} />
        {!vs.data ? (
          <Loading what="versions" />
        ) : !versioned ? (
          <p class="muted">Not deployed as versions: it runs its current revision (below).</p>
        ) : (
          <table aria-label="Versions">
            <Head cols={['MAIN', 'Version', 'Revision', 'State', 'Ready', 'Since', 'Deployed', 'Actions']} />
            <tbody>
              {vs.data.versions.map((v) => (
                <tr key={v.version}>
                  <td>{v.main && <span class="main-marker">* MAIN</span>}</td>
                  <td>{v.version}</td>
                  <td>{v.revision}</td>
                  <td>
                    <Badge state={v.state} />
                  </td>
                  <td>
                    {v.ready}/{v.desired}
                  </td>
                  <td>{ago(v.since)}</td>
                  <td>{ago(v.created_at)}</td>
                  <td class="row-actions">
                    {!v.main && (
                      <button
                        disabled={act.busy}
                        aria-label={`assign ${v.version}`}
                        onClick={() => act.run(() => call('POST', `${svcPath(svc.name)}/versions/${encodeURIComponent(v.version)}/assign`)).then(done)}
                      >
                        Assign
                      </button>
                    )}
                    <button class="danger" disabled={act.busy} aria-label={`kill ${v.version}`} onClick={() => setKilling(v.version)}>
                      Kill
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
      <Section title="Revisions">
        <ErrorBox error={revs.error} />
        {revs.data && (
          <table aria-label="Revisions">
            <Head cols={['Revision', 'Stored', 'Artifact tag', 'Actions']} />
            <tbody>
              {[...revs.data.revisions].reverse().map((r) => (
                <tr key={r.revision}>
                  <td>
                    {r.revision}
                    {r.revision === svc.revision ? ' (current)' : ''}
                  </td>
                  <td>{ago(r.created_at)}</td>
                  <td>{String(r.definition['container-tag'] ?? '')}</td>
                  <td>
                    {!versioned && r.revision !== svc.revision && (
                      <button
                        disabled={act.busy}
                        aria-label={`roll back to revision ${r.revision}`}
                        onClick={() => act.run(() => call('PUT', svcPath(svc.name), r.definition)).then(done)}
                      >
                        Roll back to this
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
      {killing && (
        <Confirm
          question={`Kill version ${killing} of ${svc.name}? Its instances stop and the version is removed.`}
          yes="Kill"
          onAnswer={(ok) => {
            const v = killing;
            setKilling(null);
            if (ok) act.run(() => call('DELETE', `${svcPath(svc.name)}/versions/${encodeURIComponent(v)}`)).then(done);
          }}
        />
      )}
    </>
  );
}

const MAX_LINES = 5000;

function Logs({ svc }: { svc: Service }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [follow, setFollow] = useState(true);
  const [autoscroll, setAutoscroll] = useState(true);
  const [instance, setInstance] = useState('');
  const [streamName, setStreamName] = useState('');
  const [search, setSearch] = useState('');
  const [error, setError] = useState('');
  const box = useRef<HTMLPreElement>(null);

  useEffect(() => {
    const ctl = new AbortController();
    setLines([]);
    setError('');
    const base = `${svcPath(svc.name)}/logs?tail=500`;
    if (follow) {
      let pending: LogLine[] = [];
      let timer = 0;
      const flush = () => {
        timer = 0;
        const add = pending;
        pending = [];
        setLines((old) => old.concat(add).slice(-MAX_LINES));
      };
      stream(
        base + '&follow=1',
        (l) => {
          if (!l.trim()) return;
          pending.push(JSON.parse(l) as LogLine);
          if (!timer) timer = window.setTimeout(flush, 100);
        },
        ctl.signal,
      ).catch((e: Error) => e.name !== 'AbortError' && setError(`the log stream ended: ${e.message}`));
    } else {
      get<{ lines: LogLine[] }>(base, { signal: ctl.signal }).then(
        (r) => setLines(r.lines),
        (e: Error) => e.name !== 'AbortError' && setError(e.message),
      );
    }
    return () => ctl.abort();
  }, [svc.name, follow]);

  const instances = useMemo(() => [...new Set(lines.map((l) => l.instance))].sort(), [lines]);
  const shown = lines.filter(
    (l) => (!instance || l.instance === instance) && (!streamName || l.stream === streamName) && (!search || l.message.includes(search)),
  );
  useEffect(() => {
    if (autoscroll && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [shown.length, autoscroll]);

  const download = () => {
    const text = shown.map((l) => `${l.time} ${l.instance} ${l.stream} ${l.message}`).join('\n') + '\n';
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
    a.download = `${svc.project}-${svc.name}.log`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  };

  return (
    <>
      <div class="row">
        <label>
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} /> Follow
        </label>
        <label>
          <input type="checkbox" checked={autoscroll} onChange={(e) => setAutoscroll(e.currentTarget.checked)} /> Auto-scroll
        </label>
        <Choice label="Instance" value={instance} onChange={setInstance} options={[['', 'all'], ...instances.map((i): [string, string] => [i, i])]} />
        <Choice
          label="Stream"
          value={streamName}
          onChange={setStreamName}
          options={[['', 'all'], ['stdout', 'stdout'], ['stderr', 'stderr'], ['berth', 'berth']]}
        />
        <label>
          Search <input type="search" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
        </label>
        <button onClick={download}>Download</button>
        <span class="muted" aria-live="polite">
          {shown.length} of {lines.length} lines{follow ? ', following' : ''}
        </span>
      </div>
      <ErrorBox error={error} />
      <pre class="logs" ref={box} tabIndex={0} aria-label={`Logs of ${svc.name}`}>
        {shown.map((l) => (
          <div class={l.stream}>
            <span class="muted">{l.time.slice(11, 23)} {l.instance}</span> {l.message}
          </div>
        ))}
      </pre>
    </>
  );
}

type Parameter = { value: unknown; type?: string; default?: unknown; stored: boolean };

function ParameterEditor({ svc, name, p, onSaved }: { svc: Service; name: string; p: Parameter; onSaved: () => void }) {
  const type = p.type ?? (typeof p.value === 'object' ? 'object' : typeof p.value);
  const [text, setText] = useState(type === 'string' ? String(p.value ?? '') : JSON.stringify(p.value));
  const [result, setResult] = useState('');
  const act = useAction();
  const id = `param-${name}`;
  const parse = (): unknown => {
    if (type === 'string') return text;
    if (type === 'boolean') return text === 'true';
    try {
      return JSON.parse(text);
    } catch {
      throw new Error(`${name}: "${text}" is not a valid ${type}`);
    }
  };
  const save = async (e: Event) => {
    e.preventDefault();
    setResult('');
    await act.run(async () => {
      const r = await call<{ instances: number; failed?: string[] }>('POST', `${svcPath(svc.name)}/parameters/${encodeURIComponent(name)}`, {
        value: parse(),
      });
      setResult(
        `applied to ${r.instances} instance${r.instances === 1 ? '' : 's'} and stored` +
          (r.failed && r.failed.length ? `; not applied: ${r.failed.join('; ')}` : ''),
      );
      onSaved();
    });
  };
  return (
    <form class="param" onSubmit={save} aria-label={`parameter ${name}`}>
      <label for={id} class="mono">
        {name}
      </label>
      <span class="muted">{type}</span>
      {type === 'boolean' ? (
        <input id={id} type="checkbox" checked={text === 'true'} onChange={(e) => setText(String(e.currentTarget.checked))} />
      ) : type === 'integer' || type === 'number' ? (
        <input id={id} type="number" step={type === 'integer' ? 1 : 'any'} value={text} onInput={(e) => setText(e.currentTarget.value)} />
      ) : type === 'array' || type === 'object' ? (
        <textarea id={id} rows={3} class="mono" value={text} onInput={(e) => setText(e.currentTarget.value)} />
      ) : (
        <input id={id} value={text} onInput={(e) => setText(e.currentTarget.value)} />
      )}
      <button type="submit" disabled={act.busy} aria-label={`set ${name}`}>
        Set
      </button>
      <span class="muted">
        {p.default !== undefined ? `default ${JSON.stringify(p.default)}` : ''}
        {p.stored ? ' · stored' : ''}
      </span>
      <span aria-live="polite" class="ok-text">
        {result}
      </span>
      <ErrorBox error={act.error} />
    </form>
  );
}

function Parameters({ svc }: { svc: Service }) {
  const ps = useLoad((signal) => get<{ parameters: Record<string, Parameter> }>(`${svcPath(svc.name)}/parameters`, { signal }), [svc.name]);
  if (!ps.data) return ps.error ? <ErrorBox error={ps.error} /> : <Loading what="parameters" />;
  const names = Object.keys(ps.data.parameters).sort();
  if (!names.length)
    return <p class="muted">No runtime parameters: a service declares them with the SDK's add_parameter.</p>;
  return (
    <div class="params">
      {names.map((n) => (
        <ParameterEditor key={n} svc={svc} name={n} p={ps.data!.parameters[n]} onSaved={ps.reload} />
      ))}
    </div>
  );
}

// Prometheus text → this route's counters; the charts plot their differences between polls.
type Sample = { t: number; total: number; errors: number; buckets: [number, number][]; sum: number };

function sampleOf(text: string, route: string, t: number): Sample {
  const s: Sample = { t, total: 0, errors: 0, buckets: [], sum: 0 };
  const tag = `route="${route}"`;
  for (const line of text.split('\n')) {
    if (!line.includes(tag)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith('berth_gateway_requests_total')) {
      s.total += value;
      if (line.includes('code="5xx"') || line.includes('code="error"')) s.errors += value;
    } else if (line.startsWith('berth_gateway_request_duration_seconds_bucket')) {
      const le = /le="([^"]+)"/.exec(line)?.[1] ?? '+Inf';
      s.buckets.push([le === '+Inf' ? Infinity : Number(le), value]);
    } else if (line.startsWith('berth_gateway_request_duration_seconds_sum')) {
      s.sum = value;
    }
  }
  return s;
}

// The q-quantile (seconds) of the requests between two samples, from the histogram buckets.
function quantile(a: Sample, b: Sample, q: number): number | null {
  const n = b.total - a.total;
  if (n <= 0 || b.buckets.length !== a.buckets.length) return null;
  const want = q * n;
  let prevLe = 0;
  let prevCount = 0;
  for (let i = 0; i < b.buckets.length; i++) {
    const [le, count] = b.buckets[i];
    const c = count - a.buckets[i][1];
    if (c >= want) {
      if (!isFinite(le)) return prevLe;
      return prevLe + ((le - prevLe) * (want - prevCount)) / Math.max(1, c - prevCount);
    }
    prevLe = le;
    prevCount = c;
  }
  return prevLe;
}

type Point = { t: number; rps: number; eps: number; p50: number | null; p90: number | null; p99: number | null };

// A line per series over the last three minutes; the scale and the newest values are in the
// caption (text inside a stretched SVG would be stretched too).
function Chart({ title, points, series, unit }: { title: string; points: Point[]; series: (keyof Point)[]; unit: string }) {
  const W = 600;
  const H = 120;
  const values = points.flatMap((p) => series.map((k) => (p[k] as number | null) ?? 0));
  const max = Math.max(1e-9, ...values);
  const x = (i: number) => (i / Math.max(1, points.length - 1)) * (W - 8) + 4;
  const y = (v: number) => H - 4 - (v / max) * (H - 8);
  const last = points[points.length - 1];
  return (
    <figure class="chart-box">
      <figcaption>
        {title}:{' '}
        {last
          ? series.map((k, si) => (
              <span class={`legend s${si}`}>
                {series.length > 1 ? `${String(k)} ` : ''}
                {fmt((last[k] as number | null) ?? 0, unit)}{' '}
              </span>
            ))
          : 'waiting for the first figures'}
        {last && <span class="muted">(scale 0 to {fmt(max, unit)})</span>}
      </figcaption>
      <svg class="chart" viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label={title}>
        {series.map((k, si) => {
          const at = (p: Point) => y((p[k] as number | null) ?? 0).toFixed(1);
          // One figure so far: a short dash at its height (a path needs two points).
          const d =
            points.length === 1
              ? `M${W / 2 - 6},${at(points[0])} L${W / 2 + 6},${at(points[0])}`
              : points.map((p, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${at(p)}`).join(' ');
          return <path class={`s${si}`} vector-effect="non-scaling-stroke" d={d} />;
        })}
      </svg>
    </figure>
  );
}

function fmt(v: number, unit: string): string {
  if (unit === 's') return v < 1 ? `${(v * 1000).toFixed(1)} ms` : `${v.toFixed(2)} s`;
  return `${v < 10 ? v.toFixed(1) : v.toFixed(0)}${unit}`;
}

function Metrics({ svc }: { svc: Service }) {
  const [points, setPoints] = useState<Point[]>([]);
  const [error, setError] = useState('');
  const [denied, setDenied] = useState(false);
  const last = useRef<Sample | null>(null);
  useEffect(() => {
    let stop = false;
    const poll = async () => {
      try {
        const text = await get<string>('/metrics', { project: null });
        const s = sampleOf(text, svc.path, Date.now());
        const a = last.current;
        setError('');
        // Two answers moments apart (a poll still under way when the next one came back) say
        // nothing about a rate: 0 requests over 0 s drew a line through NaN.
        if (a && s.t - a.t < 500) return;
        last.current = s;
        if (a) {
          const dt = (s.t - a.t) / 1000;
          const p: Point = {
            t: s.t,
            rps: (s.total - a.total) / dt,
            eps: (s.errors - a.errors) / dt,
            p50: quantile(a, s, 0.5),
            p90: quantile(a, s, 0.9),
            p99: quantile(a, s, 0.99),
          };
          setPoints((old) => old.concat(p).slice(-90));
        }
      } catch (e) {
        setError((e as Error).message);
        // Not allowed (a project token: /metrics covers every project) stays so: stop asking.
        if (e instanceof ApiError && e.status === 403) {
          stop = true;
          setDenied(true);
        }
      }
    };
    poll();
    const t = setInterval(() => !stop && poll(), 2000);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [svc.path]);
  return (
    <>
      <p class="muted">From the daemon's own gateway metrics for {svc.path}/, every 2 s.</p>
      <ErrorBox error={error} />
      {!denied && (
        <>
          <Chart title="Requests per second" points={points} series={['rps']} unit="/s" />
          <Chart title="Errors per second (5xx and failed)" points={points} series={['eps']} unit="/s" />
          <Chart title="Latency percentiles" points={points} series={['p50', 'p90', 'p99']} unit="s" />
        </>
      )}
    </>
  );
}

function Docs({ svc }: { svc: Service }) {
  return (
    <>
      <p>
        <a href={docsUrl(svc)} target="_blank" rel="noopener">
          Open the API docs of {svc.name} in a new tab
        </a>{' '}
        <span class="muted">(served by the service itself, when written with berth's SDK)</span>
      </p>
      <iframe class="docs" src={docsUrl(svc)} title={`API docs of ${svc.name}`} />
    </>
  );
}

export function ServiceView({ name, tab }: { name: string; tab: string }) {
  const svc = useLoad((signal) => get<Service>(svcPath(name), { signal }), [name], 5000);
  const [deleting, setDeleting] = useState(false);
  const act = useAction();
  if (!svc.data)
    return svc.error ? (
      <>
        <p>
          <a href={href('services')}>Services</a>
        </p>
        <ErrorBox error={svc.error} />
      </>
    ) : (
      <Loading what={name} />
    );
  const s = svc.data;
  let body;
  switch (tab) {
    case 'versions':
      body = <VersionsTab svc={s} onChange={svc.reload} />;
      break;
    case 'logs':
      body = <Logs svc={s} />;
      break;
    case 'parameters':
      body = <Parameters svc={s} />;
      break;
    case 'metrics':
      body = <Metrics svc={s} />;
      break;
    case 'docs':
      body = <Docs svc={s} />;
      break;
    default:
      body = <Overview svc={s} />;
  }
  return (
    <>
      <p class="crumbs">
        <a href={href('services')}>Services</a> /
      </p>
      <div class="section-head">
        <h1>
          {s.name} {s.main_version && <span class="muted">MAIN {s.main_version}</span>}
        </h1>
        <button class="danger" onClick={() => setDeleting(true)}>
          Delete service
        </button>
      </div>
      <ErrorBox error={act.error} />
      <nav class="tabs" aria-label="Service views">
        {TABS.map(([id, title]) => (
          <a href={href('services', name, id)} aria-current={(tab || 'overview') === id ? 'page' : undefined}>
            {title}
          </a>
        ))}
      </nav>
      {body}
      {deleting && (
        <Confirm
          question={`Delete ${s.name}? Its instances stop and its versions, revisions and artifacts are removed.`}
          yes="Delete"
          onAnswer={async (ok) => {
            setDeleting(false);
            if (ok && (await act.run(() => call('DELETE', svcPath(s.name))))) go('services');
          }}
        />
      )}
    </>
  );
}
