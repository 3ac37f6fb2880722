// Recipes (seed 003): graphs of node processes that answer requests. The list shows each
// recipe's state (STOPPED, STARTING, STARTED, DEAD, with why it is DEAD); a recipe's page draws
// its nodes between START and END with each edge's messages per second as its label, polled
// from /throughput while the recipe is up, and sends requests through its handler chain.
import { useEffect, useState } from 'preact/hooks';
import { ago, call, get } from '../api';
import { useAction, useLoad } from '../hooks';
import { go, href } from '../router';
import { Badge, Confirm, DefinitionFields, ErrorBox, Head, Loading, Section } from '../components/ui';
import { VirtualTable } from '../components/table';
import { Graph, type GraphEdge, type GraphNode } from '../components/graph';

type RecipeNode = { name: string; type: string; state: string; pid: number; restarts: number; last_exit: string };
type EdgeRate = { source: string; sink: string; messages: number; per_second: number };

type Recipe = {
  name: string;
  project: string;
  url: string;
  state: 'STOPPED' | 'STARTING' | 'STARTED' | 'DEAD';
  message: string;
  since: string | null;
  dead_count: number;
  throughput: number;
  nodes: RecipeNode[];
  edges: EdgeRate[]; // START and END by those words, nodes by name
  overrides: Record<string, unknown>;
  created_at: string;
  recipe: { handlers?: Record<string, string[]> };
};

type Throughput = { name: string; state: Recipe['state']; throughput: number; edges: EdgeRate[] };

const R = (name: string) => '/api/v1/recipes/' + encodeURIComponent(name);
const up = (state: string | undefined) => state === 'STARTED' || state === 'STARTING';

// A JSON text, or an error that names the field it came from.
function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${what}: not JSON (${(e as Error).message})`);
  }
}

// --- the list ---------------------------------------------------------------------------

export function RecipesView() {
  const list = useLoad((signal) => get<{ recipes: Recipe[] }>('/api/v1/recipes', { signal }), [], 3000);
  const act = useAction();
  const [text, setText] = useState('');
  const [made, setMade] = useState('');
  const recipes = list.data?.recipes || [];

  const construct = () =>
    act.run(async () => {
      const v = await call<Recipe>('POST', '/api/v1/recipes', parseJson(text, 'Recipe'));
      setMade(v.name);
      setText('');
      list.reload();
    });

  return (
    <>
      <h1>Recipes</h1>
      <ErrorBox error={list.error} />
      {list.loading && !list.data ? (
        <Loading what="recipes" />
      ) : recipes.length === 0 ? (
        <p class="muted">No recipes: construct one below.</p>
      ) : (
        <VirtualTable
          label="Recipes"
          rows={recipes}
          rowKey={(r) => r.name}
          height={420}
          columns={[
            { title: 'Name', cell: (r) => <a href={href('recipes', r.name)}>{r.name}</a> },
            { title: 'State', cell: (r) => <Badge state={r.state} title={r.message} />, width: '110px' },
            {
              title: 'Message',
              cell: (r) => (
                <span class={r.state === 'DEAD' ? 'dead' : 'muted'} title={r.message}>
                  {r.message}
                </span>
              ),
            },
            { title: 'URL', cell: (r) => <span class="mono">{r.url}</span> },
            { title: 'Nodes', cell: (r) => r.nodes.length, width: '70px' },
            { title: 'Messages/s', cell: (r) => r.throughput, width: '100px' },
            { title: 'Since', cell: (r) => ago(r.since), width: '110px' },
          ]}
        />
      )}
      <Section title="Construct a recipe">
        <form
          class="pl-form"
          onSubmit={(e) => {
            e.preventDefault();
            construct();
          }}
        >
          <DefinitionFields
            id="rc"
            fileLabel="Recipe file"
            textLabel="Recipe JSON"
            accept=".json,application/json"
            rows={10}
            placeholder={'{"name": "hello", "graph": {"nodes": ["ping"], "edges": [[-1, 0], [0, -1]]}, "args": [{}]}'}
            text={text}
            setText={setText}
            onError={act.setError}
          />
          <div class="row">
            <button type="submit" class="primary" disabled={act.busy || !text.trim()}>
              Construct
            </button>
            {made && !act.error && (
              <span role="status">
                Recipe <a href={href('recipes', made)}>{made}</a> constructed.
              </span>
            )}
          </div>
        </form>
      </Section>
      <ErrorBox error={act.error} />
    </>
  );
}

// --- one recipe -------------------------------------------------------------------------

const START = '@start';
const END = '@end';

function recipeGraph(r: Recipe, rates: EdgeRate[]) {
  const id = (name: string, terminal: string) => (name === 'START' || name === 'END' ? terminal : 'n:' + name);
  const nodes: GraphNode[] = r.nodes.map((n) => ({
    id: 'n:' + n.name,
    label: n.name,
    state: n.state,
    sub: `${n.type}${n.pid ? `, pid ${n.pid}` : ''}${n.restarts ? `, ${n.restarts} restarts` : ''}`,
  }));
  const edges: GraphEdge[] = rates.map((e) => ({
    from: id(e.source, START),
    to: id(e.sink, END),
    label: `${e.per_second}/s · ${e.messages}`,
  }));
  if (edges.some((e) => e.from === START)) nodes.unshift({ id: START, label: 'START', sub: 'requests in' });
  if (edges.some((e) => e.to === END)) nodes.push({ id: END, label: 'END', sub: 'answers out' });
  return { nodes, edges };
}

export function RecipeView({ name }: { name: string }) {
  const recipe = useLoad((signal) => get<Recipe>(R(name), { signal }), [name], 5000);
  const v = recipe.data;
  // The view's state decides the polling; the throughput answer only adds the edges' rates
  // and, when it sees another state first, has the view read again.
  const live = up(v?.state);
  const rates = useLoad(
    (signal) => (live ? get<Throughput>(R(name) + '/throughput', { signal }) : Promise.resolve(undefined)),
    [name, live],
    live ? 1500 : 0,
  );
  const t = rates.data;
  useEffect(() => {
    if (t && v && t.state !== v.state) recipe.reload();
  }, [t]);

  const act = useAction();
  const [overrides, setOverrides] = useState('');
  const [asking, setAsking] = useState(false);

  const start = () =>
    act.run(async () => {
      const body = overrides.trim() ? { overrides: parseJson(overrides, 'Overrides') } : undefined;
      try {
        await call('POST', R(name) + '/start', body);
      } finally {
        recipe.reload(); // a failed start leaves it DEAD: show that too
      }
    });
  const stop = () =>
    act.run(async () => {
      await call('POST', R(name) + '/stop');
      recipe.reload();
    });

  if (recipe.error && !v)
    return (
      <>
        <h1>Recipe {name}</h1>
        <ErrorBox error={recipe.error} />
        <p>
          <a href={href('recipes')}>All recipes</a>
        </p>
      </>
    );
  if (!v) return <Loading what={`recipe ${name}`} />;

  const state = v.state;
  const { nodes, edges } = recipeGraph(v, t?.edges ?? v.edges);
  return (
    <>
      <p class="crumbs">
        <a href={href('recipes')}>Recipes</a> /
      </p>
      <h1>
        Recipe {v.name} <Badge state={state} />
      </h1>
      {state === 'DEAD' && v.message && <p class="dead-box">{v.message}</p>}
      <dl class="kv">
        <dt>URL</dt>
        <dd class="mono">
          {R(v.name)}/serve (Neptune: /neptune/serve/{v.url})
        </dd>
        <dt>State since</dt>
        <dd>{ago(v.since) || '–'}</dd>
        {state !== 'DEAD' && v.message && (
          <>
            <dt>Message</dt>
            <dd>{v.message}</dd>
          </>
        )}
        <dt>Throughput</dt>
        <dd aria-live="polite">{t?.throughput ?? v.throughput} messages/s</dd>
        <dt>Times dead</dt>
        <dd>{v.dead_count}</dd>
        {Object.keys(v.overrides || {}).length > 0 && (
          <>
            <dt>Overrides</dt>
            <dd class="mono">{JSON.stringify(v.overrides)}</dd>
          </>
        )}
      </dl>

      <div class="row">
        <button class="primary" disabled={act.busy || state === 'STARTED' || state === 'STARTING'} onClick={start}>
          Start
        </button>
        <button disabled={act.busy || state === 'STOPPED'} onClick={stop}>
          Stop
        </button>
        <button class="danger" disabled={act.busy} onClick={() => setAsking(true)}>
          Destruct
        </button>
      </div>
      <label for="rc-overrides">Overrides for the next start (JSON, optional)</label>
      <textarea
        id="rc-overrides"
        class="mono wide"
        rows={2}
        spellcheck={false}
        placeholder={'{"<node>": {"add": {"arg": 1}, "remove": {"other": null}}}'}
        value={overrides}
        onInput={(e) => setOverrides((e.currentTarget as HTMLTextAreaElement).value)}
      />
      <ErrorBox error={act.error} />
      {asking && (
        <Confirm
          question={`Destruct recipe ${v.name}? It is stopped first, and its definition is gone.`}
          yes="Yes, destruct"
          onAnswer={(ok) => {
            setAsking(false);
            if (ok)
              act.run(async () => {
                await call('DELETE', R(v.name));
                go('recipes');
              });
          }}
        />
      )}

      <Section title="Graph">
        <ErrorBox error={rates.error} />
        <Graph label={`Nodes of ${v.name}`} nodes={nodes} edges={edges} />
        <p class="muted">Edge labels: messages per second · messages so far.</p>
      </Section>

      <Section title="Nodes">
        <table aria-label={`Nodes of recipe ${v.name}`}>
          <Head cols={['Node', 'Type', 'State', 'PID', 'Restarts', 'Last exit']} />
          <tbody>
            {v.nodes.map((n) => (
              <tr key={n.name}>
                <td>{n.name}</td>
                <td class="mono">{n.type}</td>
                <td>
                  <Badge state={n.state} />
                </td>
                <td>{n.pid || ''}</td>
                <td>{n.restarts}</td>
                <td title={n.last_exit}>{n.last_exit}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>

      <CallForm name={v.name} handlers={v.recipe?.handlers || {}} />
    </>
  );
}

// A request through the recipe's handler chain. GET has no body: its fields go in the query.
// The method starts as the first one the recipe serves (the default ping serves GET only).
function CallForm({ name, handlers }: { name: string; handlers: Record<string, string[]> }) {
  const served = ['GET', 'POST', 'PATCH'].filter((m) => handlers[m.toLowerCase()]);
  const [method, setMethod] = useState(served[0] || 'GET');
  const [body, setBody] = useState('{}');
  const [answer, setAnswer] = useState<string | null>(null);
  const act = useAction();

  const send = () =>
    act.run(async () => {
      setAnswer(null);
      const data = body.trim() ? parseJson(body, 'Request body') : undefined;
      let path = R(name) + '/serve';
      let payload: unknown = data;
      if (method === 'GET') {
        payload = undefined;
        if (data && typeof data === 'object' && !Array.isArray(data)) {
          const q = new URLSearchParams();
          for (const [k, val] of Object.entries(data as Record<string, unknown>))
            q.set(k, typeof val === 'string' ? val : JSON.stringify(val));
          if ([...q.keys()].length) path += '?' + q.toString();
        } else if (data !== undefined) {
          throw new Error('Request body: a GET sends an object’s fields as the query; give an object');
        }
      }
      const a = await call(method, path, payload);
      setAnswer(typeof a === 'string' ? a : JSON.stringify(a, null, 2));
    });

  return (
    <Section title="Call">
      <form
        class="pl-form"
        onSubmit={(e) => {
          e.preventDefault();
          send();
        }}
      >
        <div class="fields">
          <label>
            Method
            <select value={method} onChange={(e) => setMethod((e.currentTarget as HTMLSelectElement).value)}>
              <option>GET</option>
              <option>POST</option>
              <option>PATCH</option>
            </select>
          </label>
        </div>
        <label for="rc-body">Request body (JSON)</label>
        <textarea
          id="rc-body"
          class="mono"
          rows={4}
          spellcheck={false}
          value={body}
          onInput={(e) => setBody((e.currentTarget as HTMLTextAreaElement).value)}
        />
        <div class="row">
          <button type="submit" disabled={act.busy}>
            Call
          </button>
          {act.busy && <span class="muted">Waiting for the answer…</span>}
          {served.length > 0 && <span class="muted">This recipe serves {served.join(', ')}.</span>}
        </div>
      </form>
      <ErrorBox error={act.error} />
      {answer !== null && (
        <>
          <h3 id="rc-answer">Answer</h3>
          <pre class="answer" role="region" aria-labelledby="rc-answer" tabIndex={0}>
            {answer}
          </pre>
        </>
      )}
    </Section>
  );
}
