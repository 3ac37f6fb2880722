// The dashboard's frame: login gate, project choice, navigation, the unread-notification count
// (in the tab title too), and the view the hash names.
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { ApiError, currentProject, get, login, logout, onLoggedOut, setProject, type WhoAmI } from './api';
import { connectEvents, disconnectEvents, subscribe } from './events';
import { href, useRoute } from './router';
import { ErrorBox } from './components/ui';
import { ServicesView } from './views/services';
import { lazyView } from './lazy';

const ServiceView = lazyView(() => import('./views/service').then((m) => m.ServiceView));
const NotificationsView = lazyView(() => import('./views/notifications').then((m) => m.NotificationsView));
const TemplatesView = lazyView(() => import('./views/templates').then((m) => m.TemplatesView));
const PipelinesView = lazyView(() => import('./views/pipelines').then((m) => m.PipelinesView));
const PipelineView = lazyView(() => import('./views/pipelines').then((m) => m.PipelineView));
const RunView = lazyView(() => import('./views/pipelines').then((m) => m.RunView));
const RecipesView = lazyView(() => import('./views/recipes').then((m) => m.RecipesView));
const RecipeView = lazyView(() => import('./views/recipes').then((m) => m.RecipeView));

function Login({ reason, onIn }: { reason: string; onIn: (w: WhoAmI) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  return (
    <main class="login">
      <h1>berth</h1>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          try {
            onIn(await login(token.trim()));
          } catch (err) {
            setError((err as Error).message);
          } finally {
            setBusy(false);
          }
        }}
      >
        <label for="token">Token</label>
        <input
          id="token"
          type="password"
          autocomplete="current-password"
          placeholder="berth_…"
          value={token}
          onInput={(e) => setToken((e.currentTarget as HTMLInputElement).value)}
          autofocus
        />
        <p class="muted">
          An admin token (<code>berth-data/admin.token</code>) or a project's (<code>berth tokens create</code>).
        </p>
        <button type="submit" disabled={busy || !token.trim()}>
          Log in
        </button>
        <ErrorBox error={error || reason} />
      </form>
    </main>
  );
}

const NAV: [string, string][] = [
  ['services', 'Services'],
  ['templates', 'Templates'],
  ['notifications', 'Notifications'],
  ['pipelines', 'Pipelines'],
  ['recipes', 'Recipes'],
];

function ProjectPicker({ who, onChange }: { who: WhoAmI; onChange: () => void }) {
  const [projects, setProjects] = useState<string[]>([]);
  useEffect(() => {
    if (who.admin)
      get<{ projects: { name: string }[] }>('/api/v1/projects', { project: null })
        .then((r) => setProjects(r.projects.map((p) => p.name)))
        .catch(() => setProjects([]));
  }, [who.token_id]);
  if (!who.admin) return <span class="project">project {who.project}</span>;
  const value = currentProject() || 'default';
  return (
    <label class="project">
      project{' '}
      <select
        value={value}
        onChange={(e) => {
          setProject((e.currentTarget as HTMLSelectElement).value);
          onChange();
        }}
      >
        {(projects.length ? projects : [value]).map((p) => (
          <option value={p}>{p}</option>
        ))}
      </select>
    </label>
  );
}

export function App() {
  const [who, setWho] = useState<WhoAmI | null | undefined>(undefined);
  const [reason, setReason] = useState('');
  const [unread, setUnread] = useState(0);
  const [epoch, setEpoch] = useState(0); // bumps when the project changes: views reload
  const route = useRoute();
  const view = route[0] || 'services';

  // A 401 says why only to someone who was logged in (an expired or revoked token); on a
  // first visit it just means "log in".
  const whoRef = useRef(who);
  whoRef.current = who;
  useLayoutEffect(() => {
    onLoggedOut((m) => {
      if (whoRef.current) setReason(m);
      setWho(null);
    });
    get<WhoAmI>('/api/v1/whoami', { project: null })
      .then((w) => {
        if (!w.admin && w.project && w.project !== currentProject()) {
          // The views started with the last project seen here; this token's is another.
          setProject(w.project);
          setEpoch((e) => e + 1);
        }
        setWho(w);
      })
      .catch((e: ApiError) => {
        setReason(e.status === 401 ? '' : e.message);
        setWho(null);
      });
  }, []);

  useEffect(() => {
    if (!who) return;
    connectEvents();
    const off = subscribe({ notification: () => setUnread((u) => u + 1) });
    return () => {
      off();
      disconnectEvents();
    };
  }, [who, epoch]);

  useEffect(() => {
    if (view === 'notifications') setUnread(0);
  }, [view, unread]);

  useEffect(() => {
    document.title = (unread ? `(${unread}) ` : '') + 'berth';
  }, [unread]);

  // Until whoami answers, the view already loads (its first call runs beside whoami instead
  // of after it); a 401 from either brings the login form.
  if (who === null)
    return (
      <Login
        reason={reason}
        onIn={(w) => {
          if (!w.admin && w.project) setProject(w.project);
          setReason('');
          setWho(w);
        }}
      />
    );

  let body;
  switch (view) {
    case 'services':
      body = route[1] ? <ServiceView name={route[1]} tab={route[2] || 'overview'} /> : <ServicesView />;
      break;
    case 'templates':
      body = <TemplatesView />;
      break;
    case 'notifications':
      body = <NotificationsView />;
      break;
    case 'pipelines':
      body = route[1] ? <PipelineView name={route[1]} /> : <PipelinesView />;
      break;
    case 'runs':
      body = <RunView id={route[1] || ''} />;
      break;
    case 'recipes':
      body = route[1] ? <RecipeView name={route[1]} /> : <RecipesView />;
      break;
    default:
      body = (
        <p>
          Nothing at this address. <a href={href('services')}>Services</a>
        </p>
      );
  }
  return (
    <>
      <header>
        <a class="brand" href={href('services')}>
          berth
        </a>
        <nav aria-label="Views">
          {NAV.map(([id, title]) => (
            <a href={href(id)} aria-current={view === id ? 'page' : undefined}>
              {title}
              {id === 'notifications' && unread > 0 && (
                <span class="count" aria-label={`${unread} unread`}>
                  {unread}
                </span>
              )}
            </a>
          ))}
          <a href="/api/v1/docs">API docs</a>
        </nav>
        {who && <ProjectPicker who={who} onChange={() => setEpoch((e) => e + 1)} />}
        {who && (
          <button
            class="link"
            onClick={async () => {
              await logout();
              setWho(null);
            }}
          >
            Log out
          </button>
        )}
      </header>
      <main key={`${epoch}`}>{body}</main>
    </>
  );
}
