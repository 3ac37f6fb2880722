// The template gallery (seed 000's services: Redis, Postgres, Jupyter, VS Code, ...): each
// with its values to fill in; a template whose program is missing on this machine says which
// Debian package to install instead of offering a button that can only fail.
import { useState } from 'preact/hooks';
import { call, get } from '../api';
import { useAction, useLoad } from '../hooks';
import { go } from '../router';
import { ErrorBox, Loading } from '../components/ui';

type Template = {
  name: string;
  description: string;
  values: { name: string; default: string; required: boolean; description: string }[];
  requires: { program: string; package: string }[];
  installed: boolean;
};

function TemplateCard({ t }: { t: Template }) {
  const [name, setName] = useState(t.name);
  const [values, setValues] = useState<Record<string, string>>(() => Object.fromEntries(t.values.map((v) => [v.name, v.default])));
  const act = useAction();
  const missing = t.requires.filter(() => !t.installed);
  return (
    <form
      class="card"
      aria-label={`template ${t.name}`}
      onSubmit={async (e) => {
        e.preventDefault();
        const n = name.trim();
        if (await act.run(() => call('POST', `/api/v1/templates/${encodeURIComponent(t.name)}/services`, { name: n, values }))) go('services', n);
      }}
    >
      <h2>{t.name}</h2>
      <p>{t.description}</p>
      {!t.installed && (
        <p class="warn" role="note">
          Not installed on this machine: apt-get install {[...new Set(missing.map((r) => r.package))].join(' ')} (for{' '}
          {missing.map((r) => r.program).join(', ')}).
        </p>
      )}
      <div class="form-grid">
        <label for={`tpl-${t.name}-name`}>Service name</label>
        <input id={`tpl-${t.name}-name`} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        {t.values.map((v) => (
          <>
            <label for={`tpl-${t.name}-${v.name}`} title={v.description}>
              {v.name}
              {v.required ? ' *' : ''}
            </label>
            <input
              id={`tpl-${t.name}-${v.name}`}
              value={values[v.name]}
              required={v.required}
              aria-description={v.description}
              onInput={(e) => setValues({ ...values, [v.name]: e.currentTarget.value })}
            />
          </>
        ))}
      </div>
      <div class="row">
        <button type="submit" class="primary" disabled={act.busy || !name.trim()} aria-label={`add ${t.name}`}>
          Add
        </button>
      </div>
      <ErrorBox error={act.error} />
    </form>
  );
}

export function TemplatesView() {
  const ts = useLoad((signal) => get<{ templates: Template[] }>('/api/v1/templates', { signal }), []);
  return (
    <>
      <h1>Templates</h1>
      <p class="muted">Add a service from a template: it starts at once in the current project.</p>
      <ErrorBox error={ts.error} />
      {!ts.data ? (
        <Loading what="templates" />
      ) : (
        <div class="cards">
          {ts.data.templates.map((t) => (
            <TemplateCard key={t.name} t={t} />
          ))}
        </div>
      )}
    </>
  );
}
