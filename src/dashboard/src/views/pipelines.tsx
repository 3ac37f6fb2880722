// Pipelines, their runs, jobs and sessions (seed 004). A pipeline's page draws its steps as a
// graph (incoming_connections are the edges) coloured by the shown run's step statuses: the
// newest run unless another is picked. The runs list carries every run's steps, so polling it
// (every second while a run is open) is what keeps the graph live. A run's page polls the run
// itself and the logs of the clicked step until they end.
import { Fragment } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ago, call, get } from '../api';
import { useAction, useLoad } from '../hooks';
import { href } from '../router';
import { Badge, Confirm, DefinitionFields, ErrorBox, Head, Loading, Section } from '../components/ui';
import { VirtualTable } from '../components/table';
import { Graph, type GraphEdge, type GraphNode } from '../components/graph';

type StepDef = {
  uuid: string;
  title: string;
  file_path: string;
  command?: string;
  incoming_connections: string[];
  parameters?: Record<string, unknown>;
};

type Definition = { name: string; uuid: string; steps: Record<string, StepDef> };

type Pipeline = {
  name: string;
  uuid: string;
  project: string;
  project_dir: string;
  created_at: string | null;
  updated_at: string | null;
  definition: Definition | null;
  steps?: number;
};

type StepRun = {
  step: string;
  title: string;
  position: number;
  status: string;
  started_at: string | null;
  finished_at: string | null;
  exit_code: number | null;
  message: string;
};

type Run = {
  uuid: string;
  project: string;
  pipeline: string;
  run_type: string;
  kind: string;
  status: string;
  waiting: string | null;
  message: string;
  project_dir: string;
  created_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  steps: StepRun[];
};

type Job = {
  uuid: string;
  name: string;
  pipeline: string;
  schedule: string | null;
  time_zone: string | null;
  at: string | null;
  status: string;
  next_run: string | null;
  last_run: string | null;
  parameters: unknown[] | null;
  created_at: string | null;
  finished_at: string | null;
  message: string;
  runs: { total: number; succeeded: number; failed: number; running: number };
};

type Session = {
  project: string;
  pipeline: string;
  state: string;
  created_at: string;
  services: { name: string; state: string; reason?: string }[];
};

type LogLine = { time: string; stream: string; message: string };

const ENDED = new Set(['SUCCESS', 'FAILURE', 'ABORTED']);
const ended = (status: string) => ENDED.has(status);
const short = (id: string) => id.slice(0, 8);
const P = (name: string) => '/api/v1/pipelines/' + encodeURIComponent(name);

// ago() for the past, "in 3 min" for the future (a job's next run).
function when(iso: string | null | undefined): string {
  if (!iso) return '';
  const s = Math.round((Date.parse(iso) - Date.now()) / 1000);
  if (s <= 0) return ago(iso);
  if (s < 60) return `in ${s} s`;
  if (s < 3600) return `in ${Math.floor(s / 60)} min`;
  if (s < 86400) return `in ${Math.floor(s / 3600)} h`;
  return `in ${Math.floor(s / 86400)} d`;
}

function stepDefs(def: Definition | null | undefined): StepDef[] {
  return def && def.steps ? Object.values(def.steps) : [];
}

// The graph of a pipeline's steps; `run` colours them, `only` keeps the steps a run has.
function pipelineGraph(defs: StepDef[], run?: Run, only?: Set<string>) {
  const status = new Map((run?.steps || []).map((s) => [s.step, s.status]));
  const keep = (id: string) => !only || only.has(id);
  const nodes: GraphNode[] = defs
    .filter((d) => keep(d.uuid))
    .map((d) => ({
      id: d.uuid,
      label: d.title || d.uuid,
      state: status.get(d.uuid),
      sub: d.command || d.file_path || '',
    }));
  const edges: GraphEdge[] = [];
  for (const d of defs)
    for (const parent of d.incoming_connections || [])
      if (keep(d.uuid) && keep(parent)) edges.push({ from: parent, to: d.uuid });
  return { nodes, edges };
}

// Text from a chosen file into a textarea (the file input is the "upload" half).
// --- the list ---------------------------------------------------------------------------

export function PipelinesView() {
  const list = useLoad((signal) => get<{ pipelines: Pipeline[] }>('/api/v1/pipelines', { signal }), [], 10000);
  const act = useAction();
  const [text, setText] = useState('');
  const [dir, setDir] = useState('');
  const [added, setAdded] = useState('');
  const [doomed, setDoomed] = useState('');

  const create = () =>
    act.run(async () => {
      // JSON goes as JSON; YAML goes as it is (the daemon reads the body as the file, whatever
      // its Content-Type; call() sends a Blob untouched).
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = new Blob([text], { type: 'text/yaml' });
      }
      const path = '/api/v1/pipelines' + (dir.trim() ? '?project_dir=' + encodeURIComponent(dir.trim()) : '');
      const p = await call<Pipeline>('POST', path, body);
      setAdded(p.name);
      setText('');
      list.reload();
    });

  const pipelines = list.data?.pipelines || [];
  return (
    <>
      <h1>Pipelines</h1>
      <ErrorBox error={list.error} />
      {list.loading && !list.data ? (
        <Loading what="pipelines" />
      ) : pipelines.length === 0 ? (
        <p class="muted">No pipelines yet: create one below.</p>
      ) : (
        <VirtualTable
          label="Pipelines"
          rows={pipelines}
          rowKey={(p) => p.name}
          height={420}
          columns={[
            { title: 'Name', cell: (p) => <a href={href('pipelines', p.name)}>{p.name}</a> },
            { title: 'Steps', cell: (p) => stepDefs(p.definition).length, width: '70px' },
            { title: 'Project directory', cell: (p) => <span class="mono">{p.project_dir}</span> },
            { title: 'Updated', cell: (p) => ago(p.updated_at || p.created_at), width: '120px' },
            {
              title: 'Actions',
              width: '100px',
              cell: (p) => (
                <button class="danger" aria-label={`Delete pipeline ${p.name}`} onClick={() => setDoomed(p.name)}>
                  Delete
                </button>
              ),
            },
          ]}
        />
      )}
      {doomed && (
        <Confirm
          question={`Delete pipeline ${doomed}? Its runs are kept.`}
          yes="Yes, delete"
          onAnswer={(ok) => {
            const name = doomed;
            setDoomed('');
            if (ok)
              act.run(async () => {
                await call('DELETE', P(name));
                list.reload();
              });
          }}
        />
      )}
      <Section title="Create a pipeline">
        <form
          class="pl-form"
          onSubmit={(e) => {
            e.preventDefault();
            create();
          }}
        >
          <DefinitionFields
            id="pl"
            fileLabel="Pipeline file"
            textLabel="Pipeline definition (YAML or JSON)"
            accept=".yaml,.yml,.json,application/json,text/yaml"
            rows={12}
            placeholder={'name: etl\nsteps:\n  - name: extract\n    command: echo extract\n  - name: load\n    command: echo load\n    after: [extract]'}
            text={text}
            setText={setText}
            onError={act.setError}
          />
          <label for="pl-dir">Project directory (optional, absolute: where the steps run)</label>
          <input
            id="pl-dir"
            class="mono"
            value={dir}
            placeholder="/srv/projects/etl"
            onInput={(e) => setDir((e.currentTarget as HTMLInputElement).value)}
          />
          <div class="row">
            <button type="submit" class="primary" disabled={act.busy || !text.trim()}>
              Create pipeline
            </button>
            {added && !act.error && (
              <span role="status">
                Pipeline <a href={href('pipelines', added)}>{added}</a> saved.
              </span>
            )}
          </div>
        </form>
      </Section>
      <ErrorBox error={act.error} />
    </>
  );
}

// --- one pipeline -----------------------------------------------------------------------

export function PipelineView({ name }: { name: string }) {
  const pipeline = useLoad((signal) => get<Pipeline>(P(name), { signal }), [name]);
  // The runs list polls fast while one of them is open: it is what makes the graph live.
  const [fast, setFast] = useState(true);
  const runs = useLoad(
    (signal) =>
      get<{ runs: Run[] }>(`/api/v1/runs?pipeline=${encodeURIComponent(name)}&limit=30`, { signal }),
    [name],
    fast ? 1000 : 5000,
  );
  const list = runs.data?.runs || [];
  const open = list.some((r) => !ended(r.status));
  useEffect(() => setFast(open), [runs.data]);

  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [withSelected, setWithSelected] = useState(false);
  const [chosen, setChosen] = useState('');
  const [started, setStarted] = useState<Run | null>(null);
  const act = useAction();

  const shown =
    list.find((r) => r.uuid === chosen) ?? (started && started.uuid === chosen ? started : undefined) ?? list[0];
  const defs = stepDefs(pipeline.data?.definition);
  const { nodes, edges } = pipelineGraph(defs, shown);

  const toggle = (id: string) =>
    setSelected((s) => {
      const n = new Set(s);
      if (n.has(id)) n.delete(id);
      else n.add(id);
      return n;
    });

  const start = (type: 'full' | 'selection' | 'incoming') =>
    act.run(async () => {
      const body: Record<string, unknown> = { type };
      if (type !== 'full') body.steps = defs.map((d) => d.uuid).filter((id) => selected.has(id));
      if (type === 'incoming' && withSelected) body.include_selected = true;
      const run = await call<Run>('POST', P(name) + '/runs', body);
      setStarted(run);
      setChosen(run.uuid);
      setFast(true);
      runs.reload();
    });

  const cancel = (id: string) =>
    act.run(async () => {
      await call('POST', `/api/v1/runs/${encodeURIComponent(id)}/cancel`);
      runs.reload();
    });

  if (pipeline.error && !pipeline.data)
    return (
      <>
        <h1>Pipeline {name}</h1>
        <ErrorBox error={pipeline.error} />
        <p>
          <a href={href('pipelines')}>All pipelines</a>
        </p>
      </>
    );
  if (!pipeline.data) return <Loading what={`pipeline ${name}`} />;
  const p = pipeline.data;
  const none = selected.size === 0;
  return (
    <>
      <p class="crumbs">
        <a href={href('pipelines')}>Pipelines</a> /
      </p>
      <h1>Pipeline {p.name}</h1>
      <dl class="kv">
        <dt>Steps</dt>
        <dd>{defs.length}</dd>
        <dt>Project directory</dt>
        <dd class="mono">{p.project_dir || '(the project’s own)'}</dd>
        <dt>Updated</dt>
        <dd>{ago(p.updated_at || p.created_at)}</dd>
      </dl>

      <Section title="Steps">
        <p class="muted" id="pl-graph-help">
          Select steps by clicking them (Space or Enter on a focused step), then run them or the steps that lead to
          them.
        </p>
        <Graph label={`Steps of ${p.name}`} nodes={nodes} edges={edges} selected={selected} onToggle={toggle} />
        <div class="row">
          <button class="primary" disabled={act.busy} onClick={() => start('full')}>
            Run all
          </button>
          <button disabled={act.busy || none} onClick={() => start('selection')}>
            Run selected
          </button>
          <button disabled={act.busy || none} onClick={() => start('incoming')}>
            Run incoming
          </button>
          <label class="check">
            <input
              type="checkbox"
              checked={withSelected}
              onChange={(e) => setWithSelected((e.currentTarget as HTMLInputElement).checked)}
            />{' '}
            Include the selected steps in an incoming run
          </label>
          <button disabled={none} onClick={() => setSelected(new Set())}>
            Clear selection
          </button>
          <span class="muted" aria-live="polite">
            {selected.size} selected
          </span>
        </div>
        <ErrorBox error={act.error} />
        {shown ? (
          <div class="row" aria-live="polite">
            <span>
              Showing run <a href={href('runs', shown.uuid)}>{short(shown.uuid)}</a> ({shown.run_type}
              {shown.kind === 'job' ? ', job' : ''}, {ago(shown.created_at)})
            </span>
            <Badge state={shown.status} title={shown.message} />
            {shown.waiting && <span class="muted">waiting: {shown.waiting}</span>}
            {shown.message && <span class="muted">{shown.message}</span>}
            {!ended(shown.status) && (
              <button class="danger" disabled={act.busy} onClick={() => cancel(shown.uuid)}>
                Cancel run
              </button>
            )}
          </div>
        ) : (
          <p class="muted">No runs yet.</p>
        )}
      </Section>

      <Section title="Runs">
        <ErrorBox error={runs.error} />
        {list.length === 0 ? (
          <p class="muted">{runs.loading ? 'Loading runs…' : 'This pipeline has not run yet.'}</p>
        ) : (
          <VirtualTable
            label={`Runs of ${p.name}`}
            rows={list}
            rowKey={(r) => r.uuid}
            height={300}
            columns={[
              { title: 'Run', cell: (r) => <a href={href('runs', r.uuid)}>{short(r.uuid)}</a>, width: '100px' },
              { title: 'Status', cell: (r) => <Badge state={r.status} title={r.message} />, width: '110px' },
              { title: 'Type', cell: (r) => r.run_type + (r.kind === 'job' ? ' (job)' : ''), width: '120px' },
              { title: 'Steps', cell: (r) => r.steps.map((s) => s.title || s.step).join(', ') },
              { title: 'Created', cell: (r) => ago(r.created_at), width: '110px' },
              { title: 'Finished', cell: (r) => ago(r.finished_at), width: '110px' },
              {
                title: 'Graph',
                width: '90px',
                cell: (r) => (
                  <button
                    aria-label={`Show run ${short(r.uuid)} on the graph`}
                    aria-pressed={shown?.uuid === r.uuid}
                    onClick={() => setChosen(r.uuid)}
                  >
                    Show
                  </button>
                ),
              },
            ]}
          />
        )}
      </Section>

      <JobsSection pipeline={p.name} />
      <SessionSection pipeline={p.name} />
    </>
  );
}

function JobsSection({ pipeline }: { pipeline: string }) {
  const jobs = useLoad((signal) => get<{ jobs: Job[] }>('/api/v1/jobs', { signal }), [pipeline], 5000);
  const act = useAction();
  const [jobName, setJobName] = useState('');
  const [schedule, setSchedule] = useState('');
  const [zone, setZone] = useState('');
  const [params, setParams] = useState('');
  const [expanded, setExpanded] = useState('');
  const mine = (jobs.data?.jobs || []).filter((j) => j.pipeline === pipeline);

  const create = () =>
    act.run(async () => {
      const body: Record<string, unknown> = { pipeline, name: jobName.trim() || pipeline };
      if (schedule.trim()) body.schedule = schedule.trim();
      if (zone.trim()) body.time_zone = zone.trim();
      if (params.trim()) {
        try {
          body.parameters = JSON.parse(params);
        } catch (e) {
          throw new Error(`Parameter sets: not JSON (${(e as Error).message})`);
        }
      }
      await call('POST', '/api/v1/jobs', body);
      setJobName('');
      jobs.reload();
    });
  const change = (j: Job, what: 'pause' | 'resume' | 'cancel') =>
    act.run(async () => {
      await call('POST', `/api/v1/jobs/${encodeURIComponent(j.uuid)}/${what}`);
      jobs.reload();
    });

  return (
    <Section title="Jobs">
      <ErrorBox error={jobs.error} />
      {mine.length === 0 ? (
        <p class="muted">{jobs.loading && !jobs.data ? 'Loading jobs…' : 'No jobs of this pipeline.'}</p>
      ) : (
        <table aria-label={`Jobs of ${pipeline}`}>
          <Head cols={['Job', 'Status', 'Schedule', 'Parameter sets', 'Runs', 'Next / last run', 'Actions']} />
          <tbody>
            {mine.map((j) => (
              <Fragment key={j.uuid}>
                <tr>
                  <td title={j.uuid}>{j.name}</td>
                  <td>
                    <Badge state={j.status} title={j.message} />
                  </td>
                  <td class="mono">
                    {j.schedule ? j.schedule + (j.time_zone ? ` (${j.time_zone})` : '') : j.at ? `once at ${j.at}` : 'once'}
                  </td>
                  <td>
                    <details>
                      <summary>{(j.parameters || []).length || 'none'}</summary>
                      <pre class="mono">{JSON.stringify(j.parameters ?? [], null, 2)}</pre>
                    </details>
                  </td>
                  <td>
                    {j.runs.total} ({j.runs.succeeded} ok, {j.runs.failed} failed, {j.runs.running} open)
                  </td>
                  <td>
                    {when(j.next_run) || '–'} / {when(j.last_run) || '–'}
                  </td>
                  <td>
                    <div class="acts">
                      <button
                        aria-expanded={expanded === j.uuid}
                        aria-label={`Runs of job ${j.name}`}
                        onClick={() => setExpanded(expanded === j.uuid ? '' : j.uuid)}
                      >
                        Runs
                      </button>
                      {(j.status === 'STARTED' || j.status === 'PENDING') && (
                        <button disabled={act.busy} onClick={() => change(j, 'pause')}>
                          Pause job
                        </button>
                      )}
                      {j.status === 'PAUSED' && (
                        <button disabled={act.busy} onClick={() => change(j, 'resume')}>
                          Resume job
                        </button>
                      )}
                      {!ended(j.status) && (
                        <button class="danger" disabled={act.busy} onClick={() => change(j, 'cancel')}>
                          Cancel job
                        </button>
                      )}
                    </div>
                  </td>
                </tr>
                {expanded === j.uuid && (
                  <tr>
                    <td colSpan={7} class="wrap">
                      {j.message && <p class="muted">{j.message}</p>}
                      <JobRuns id={j.uuid} />
                    </td>
                  </tr>
                )}
              </Fragment>
            ))}
          </tbody>
        </table>
      )}
      <h3>New job</h3>
      <form
        class="pl-form"
        onSubmit={(e) => {
          e.preventDefault();
          create();
        }}
      >
        <div class="fields">
          <label>
            Job name
            <input value={jobName} placeholder={pipeline} onInput={(e) => setJobName((e.currentTarget as HTMLInputElement).value)} />
          </label>
          <label>
            Cron schedule
            <input
              class="mono"
              size={30}
              value={schedule}
              placeholder="0 3 * * * (empty: run once now)"
              onInput={(e) => setSchedule((e.currentTarget as HTMLInputElement).value)}
            />
          </label>
          <label>
            Time zone
            <input value={zone} placeholder="UTC" onInput={(e) => setZone((e.currentTarget as HTMLInputElement).value)} />
          </label>
        </div>
        <label for="job-params">Parameter sets (JSON list, one run each; optional)</label>
        <textarea
          id="job-params"
          class="mono"
          rows={3}
          spellcheck={false}
          placeholder={'[{"<step>": {"param": 1}}, {"<step>": {"param": 2}}]'}
          value={params}
          onInput={(e) => setParams((e.currentTarget as HTMLTextAreaElement).value)}
        />
        <div class="row">
          <button type="submit" disabled={act.busy}>
            Create job
          </button>
        </div>
      </form>
      <ErrorBox error={act.error} />
    </Section>
  );
}

function JobRuns({ id }: { id: string }) {
  const job = useLoad(
    (signal) => get<{ recent_runs: Run[] }>(`/api/v1/jobs/${encodeURIComponent(id)}`, { signal }),
    [id],
    3000,
  );
  if (job.error) return <ErrorBox error={job.error} />;
  if (!job.data) return <Loading what="the job's runs" />;
  const runs = job.data.recent_runs || [];
  if (runs.length === 0) return <p class="muted">No runs yet.</p>;
  return (
    <ul class="plain">
      {runs.map((r) => (
        <li key={r.uuid}>
          <a href={href('runs', r.uuid)}>{short(r.uuid)}</a> <Badge state={r.status} title={r.message} />{' '}
          <span class="muted">{ago(r.created_at)}</span>
        </li>
      ))}
    </ul>
  );
}

function SessionSection({ pipeline }: { pipeline: string }) {
  const sessions = useLoad((signal) => get<{ sessions: Session[] }>('/api/v1/sessions', { signal }), [pipeline], 3000);
  const act = useAction();
  const s = (sessions.data?.sessions || []).find((x) => x.pipeline === pipeline);
  return (
    <Section
      title="Session"
      actions={
        s ? (
          <button
            class="danger"
            disabled={act.busy}
            onClick={() =>
              act.run(async () => {
                await call('DELETE', '/api/v1/sessions/' + encodeURIComponent(pipeline));
                sessions.reload();
              })
            }
          >
            Stop session
          </button>
        ) : (
          <button
            disabled={act.busy || !sessions.data}
            onClick={() =>
              act.run(async () => {
                await call('POST', '/api/v1/sessions', { pipeline });
                sessions.reload();
              })
            }
          >
            Start session
          </button>
        )
      }
    >
      <ErrorBox error={sessions.error || act.error} />
      {!s ? (
        <p class="muted">No session: a session runs the project's interactive services for this pipeline.</p>
      ) : (
        <>
          <p>
            Session <Badge state={s.state} /> <span class="muted">started {ago(s.created_at)}</span>
          </p>
          {s.services.length === 0 ? (
            <p class="muted">The project has no interactive services.</p>
          ) : (
            <ul class="plain" aria-label="Services of the session">
              {s.services.map((svc) => (
                <li key={svc.name}>
                  <a href={href('services', svc.name)}>{svc.name}</a> <Badge state={svc.state} />
                  {svc.reason && <span class="muted"> {svc.reason}</span>}
                </li>
              ))}
            </ul>
          )}
        </>
      )}
    </Section>
  );
}

// --- one run ----------------------------------------------------------------------------

export function RunView({ id }: { id: string }) {
  const [fast, setFast] = useState(true);
  const run = useLoad((signal) => get<Run>('/api/v1/runs/' + encodeURIComponent(id), { signal }), [id], fast ? 1000 : 0);
  const r = run.data;
  useEffect(() => setFast(!r || !ended(r.status)), [r?.status]);
  // The edges come from the stored pipeline (the run's answer has its steps, not its plan);
  // the list, not GET /pipelines/{name}, so that a deleted pipeline is no 404.
  const pipelines = useLoad((signal) => get<{ pipelines: Pipeline[] }>('/api/v1/pipelines', { signal }), [id]);
  const [step, setStep] = useState('');
  const act = useAction();

  if (!id) return <p>Which run? See <a href={href('pipelines')}>Pipelines</a>.</p>;
  if (run.error && !r)
    return (
      <>
        <h1>Run {short(id)}</h1>
        <ErrorBox error={run.error} />
      </>
    );
  if (!r) return <Loading what={`run ${short(id)}`} />;

  const def = pipelines.data?.pipelines.find((p) => p.name === r.pipeline)?.definition;
  const inRun = new Set(r.steps.map((s) => s.step));
  let { nodes, edges } = pipelineGraph(stepDefs(def), r, inRun);
  if (nodes.length < r.steps.length) {
    // No (matching) stored pipeline: the steps alone, in their order.
    nodes = r.steps.map((s) => ({ id: s.step, label: s.title || s.step, state: s.status }));
    edges = [];
  }
  const current = r.steps.find((s) => s.step === step);
  return (
    <>
      <p class="crumbs">
        <a href={href('pipelines')}>Pipelines</a> /{' '}
        {r.pipeline && (
          <>
            <a href={href('pipelines', r.pipeline)}>{r.pipeline}</a> /
          </>
        )}
      </p>
      <h1>
        Run {short(r.uuid)} <Badge state={r.status} />
      </h1>
      <dl class="kv">
        <dt>Pipeline</dt>
        <dd>{r.pipeline}</dd>
        <dt>Type</dt>
        <dd>
          {r.run_type}
          {r.kind === 'job' ? ' (job run)' : ''}
        </dd>
        <dt>Created</dt>
        <dd>{ago(r.created_at)}</dd>
        <dt>Started</dt>
        <dd>{ago(r.started_at) || '–'}</dd>
        <dt>Finished</dt>
        <dd>{ago(r.finished_at) || '–'}</dd>
        {r.waiting && (
          <>
            <dt>Waiting</dt>
            <dd>{r.waiting}</dd>
          </>
        )}
        {r.message && (
          <>
            <dt>Message</dt>
            <dd>{r.message}</dd>
          </>
        )}
      </dl>
      {!ended(r.status) && (
        <div class="row">
          <button
            class="danger"
            disabled={act.busy}
            onClick={() =>
              act.run(async () => {
                await call('POST', `/api/v1/runs/${encodeURIComponent(r.uuid)}/cancel`);
                run.reload();
              })
            }
          >
            Cancel run
          </button>
        </div>
      )}
      <ErrorBox error={act.error || run.error} />
      <Section title="Steps">
        <p class="muted">Click a step to see its logs.</p>
        <Graph
          label={`Steps of run ${short(r.uuid)}`}
          nodes={nodes}
          edges={edges}
          selected={new Set(step ? [step] : [])}
          onToggle={(s) => setStep(step === s ? '' : s)}
        />
        <table aria-label="Step statuses">
          <Head cols={['Step', 'Status', 'Started', 'Finished', 'Exit code', 'Message']} />
          <tbody>
            {r.steps.map((s) => (
              <tr key={s.step}>
                <td>{s.title || s.step}</td>
                <td>
                  <Badge state={s.status} />
                </td>
                <td>{ago(s.started_at)}</td>
                <td>{ago(s.finished_at)}</td>
                <td>{s.exit_code ?? ''}</td>
                <td title={s.message}>{s.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>
      {current && <StepLogs run={r.uuid} step={current} />}
    </>
  );
}

function StepLogs({ run, step }: { run: string; step: StepRun }) {
  const open = !ended(step.status);
  const logs = useLoad(
    (signal) =>
      get<{ lines: LogLine[] }>(
        `/api/v1/runs/${encodeURIComponent(run)}/steps/${encodeURIComponent(step.step)}/logs?tail=1000`,
        { signal },
      ),
    [run, step.step],
    open ? 1000 : 0,
  );
  // One more read when the step ends: its last lines were written before the status changed.
  const wasOpen = useRef(open);
  useEffect(() => {
    if (wasOpen.current && !open) logs.reload();
    wasOpen.current = open;
  }, [open]);
  const lines = logs.data?.lines || [];
  return (
    <Section title={`Logs of ${step.title || step.step}`}>
      <ErrorBox error={logs.error} />
      {logs.loading && !logs.data ? (
        <Loading what="logs" />
      ) : (
        <pre class="logs" tabIndex={0} role="region" aria-label={`Logs of step ${step.title || step.step}`}>
          {lines.length === 0 ? (
            <span class="berth">(no output)</span>
          ) : (
            lines.map((l) => (
              <div class={l.stream}>
                <span class="muted">{l.time.slice(11, 19)}</span> {l.message}
              </div>
            ))
          )}
        </pre>
      )}
    </Section>
  );
}
