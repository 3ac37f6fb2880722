// Small pieces every view uses: an error box with the server's message, a confirmation
// dialog, a status badge whose colour follows the state word.
import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

export function ErrorBox({ error }: { error: string }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {error}
    </p>
  );
}

export function Loading({ what }: { what: string }) {
  return <p class="muted" aria-live="polite">Loading {what}…</p>;
}

const good = new Set(['running', 'started', 'success', 'healthy', 'ready']);
const bad = new Set(['crash-looping', 'failure', 'dead', 'oom-killed', 'unhealthy', 'failed', 'aborted', 'critical']);
const busy = new Set(['starting', 'pending', 'stopping', 'launching', 'queued', 'warning']);

export function stateClass(state: string): string {
  const s = state.toLowerCase();
  if (good.has(s)) return 'ok';
  if (bad.has(s) || s.startsWith('failed') || s.startsWith('error')) return 'bad';
  if (busy.has(s)) return 'busy';
  return 'idle';
}

export function Badge({ state, title }: { state: string; title?: string }) {
  return (
    <span class={'badge ' + stateClass(state)} title={title}>
      {state}
    </span>
  );
}

// A modal question; `onAnswer(true)` when confirmed. Escape and the Cancel button answer no.
export function Confirm({
  question,
  yes,
  onAnswer,
  children,
}: {
  question: string;
  yes: string;
  onAnswer: (ok: boolean) => void;
  children?: ComponentChildren;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    ref.current?.showModal();
  }, []);
  return (
    <dialog ref={ref} aria-labelledby="confirm-q" onClose={() => onAnswer(false)}>
      <p id="confirm-q">{question}</p>
      {children}
      <div class="row">
        <button class="danger" onClick={() => onAnswer(true)}>
          {yes}
        </button>
        <button onClick={() => ref.current?.close()}>Cancel</button>
      </div>
    </dialog>
  );
}

export function Section({ title, children, actions }: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <section aria-label={title}>
      <div class="section-head">
        <h2>{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  );
}

// A definition pasted or read from a file (pipelines, recipes): the file's text fills the
// textarea, where it can still be edited before it is sent.
export function DefinitionFields({
  id,
  fileLabel,
  textLabel,
  accept,
  placeholder,
  rows,
  text,
  setText,
  onError,
}: {
  id: string;
  fileLabel: string;
  textLabel: string;
  accept: string;
  placeholder: string;
  rows: number;
  text: string;
  setText: (t: string) => void;
  onError: (message: string) => void;
}) {
  return (
    <>
      <label for={`${id}-file`}>{fileLabel}</label>
      <input
        id={`${id}-file`}
        type="file"
        accept={accept}
        onChange={(e) => {
          const f = (e.currentTarget as HTMLInputElement).files?.[0];
          if (f) f.text().then(setText, (err: Error) => onError(err.message));
        }}
      />
      <label for={`${id}-text`}>{textLabel}</label>
      <textarea
        id={`${id}-text`}
        class="mono"
        rows={rows}
        spellcheck={false}
        placeholder={placeholder}
        value={text}
        onInput={(e) => setText((e.currentTarget as HTMLTextAreaElement).value)}
      />
    </>
  );
}

// A labelled select of [value, text] options (the filters above tables and logs).
export function Choice({
  label,
  value,
  options,
  onChange,
}: {
  label: string;
  value: string;
  options: [string, string][];
  onChange: (value: string) => void;
}) {
  return (
    <label>
      {label}{' '}
      <select value={value} onChange={(e) => onChange((e.currentTarget as HTMLSelectElement).value)}>
        {options.map(([v, text]) => (
          <option value={v}>{text}</option>
        ))}
      </select>
    </label>
  );
}

// A table's header row: one column header per title.
export function Head({ cols }: { cols: ComponentChildren[] }) {
  return (
    <thead>
      <tr>
        {cols.map((c) => (
          <th scope="col">{c}</th>
        ))}
      </tr>
    </thead>
  );
}
