// The project's notifications, newest first, with new ones arriving live from the event
// stream (a repeat of a known one updates its row: count and time). Clear one or all.
import { useEffect, useState } from 'preact/hooks';
import { ago, call, get } from '../api';
import { subscribe, type Notification } from '../events';
import { useAction } from '../hooks';
import { href } from '../router';
import { Choice, Confirm, ErrorBox, Head, Loading } from '../components/ui';

function merge(list: Notification[], n: Notification): Notification[] {
  return [n, ...list.filter((o) => o.id !== n.id)];
}

export function NotificationsView() {
  const [list, setList] = useState<Notification[] | undefined>(undefined);
  const [error, setError] = useState('');
  const [severity, setSeverity] = useState('');
  const [clearing, setClearing] = useState(false);
  const [fresh, setFresh] = useState(new Set<number>());
  const act = useAction();

  useEffect(() => {
    const off = subscribe({
      notification: (n) => {
        setList((l) => merge(l ?? [], n));
        setFresh((f) => new Set(f).add(n.id));
      },
    });
    get<{ notifications: Notification[] }>('/api/v1/notifications').then(
      (r) => setList((l) => (l ? r.notifications.filter((n) => !l.some((o) => o.id === n.id)).concat(l) : r.notifications)),
      (e: Error) => setError(e.message),
    );
    return off;
  }, []);

  const shown = (list ?? []).filter((n) => !severity || n.severity === severity);
  return (
    <>
      <div class="section-head">
        <h1>Notifications</h1>
        <div class="row">
          <Choice
            label="Severity"
            value={severity}
            onChange={setSeverity}
            options={[['', 'all'], ['INFO', 'INFO'], ['WARNING', 'WARNING'], ['CRITICAL', 'CRITICAL']]}
          />
          <button class="danger" disabled={!list?.length || act.busy} onClick={() => setClearing(true)}>
            Clear all
          </button>
        </div>
      </div>
      <ErrorBox error={act.error || error} />
      {list === undefined ? (
        <Loading what="notifications" />
      ) : shown.length === 0 ? (
        <p class="muted">No notifications. A service raises them with the SDK's notify().</p>
      ) : (
        <table aria-label="Notifications">
          <Head cols={['Time', 'Severity', 'Service', 'Version', 'Message', 'Count', <span class="sr-only">Actions</span>]} />
          <tbody aria-live="polite">
            {shown.map((n) => (
              <tr key={n.id} class={`sev-${n.severity}${fresh.has(n.id) ? ' fresh' : ''}`}>
                <td>
                  <time dateTime={n.last_at} title={`first ${n.first_at}, last ${n.last_at}`}>
                    {ago(n.last_at)}
                  </time>
                </td>
                <td>
                  <span class={`sev-word sev-${n.severity}`}>{n.severity}</span>
                </td>
                <td>{n.service ? <a href={href('services', n.service)}>{n.service}</a> : ''}</td>
                <td>{n.version}</td>
                <td class="message" title={n.message}>
                  {n.message}
                </td>
                <td>{n.count}</td>
                <td>
                  <button
                    disabled={act.busy}
                    aria-label={`clear notification ${n.id}`}
                    onClick={() =>
                      act
                        .run(() => call('DELETE', `/api/v1/notifications/${n.id}`))
                        .then((ok) => ok && setList((l) => (l ?? []).filter((o) => o.id !== n.id)))
                    }
                  >
                    Clear
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {clearing && (
        <Confirm
          question="Clear every notification of this project?"
          yes="Clear all"
          onAnswer={(ok) => {
            setClearing(false);
            if (ok) act.run(() => call('DELETE', '/api/v1/notifications')).then((done) => done && setList([]));
          }}
        />
      )}
    </>
  );
}
