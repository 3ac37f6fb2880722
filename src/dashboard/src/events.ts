// The project's live event stream (/api/v1/events/stream, server-sent events), shared by the
// views: notifications as they are raised, supervisor events of every service. EventSource
// sends the login cookie by itself and resumes after a drop with Last-Event-ID.
import { withProject } from './api';

export type Notification = {
  id: number;
  project: string;
  service: string;
  version: string;
  instance: string;
  severity: 'INFO' | 'WARNING' | 'CRITICAL';
  message: string;
  count: number;
  first_at: string;
  last_at: string;
};

export type ServiceEvent = { project: string; service: string; kind: string; message: string; time: string };

type Listener = { notification?: (n: Notification) => void; service?: (e: ServiceEvent) => void };

const listeners = new Set<Listener>();
let source: EventSource | null = null;

export function connectEvents() {
  source?.close();
  source = new EventSource(withProject('/api/v1/events/stream'));
  source.addEventListener('notification', (e) => {
    const n = JSON.parse((e as MessageEvent).data) as Notification;
    listeners.forEach((l) => l.notification?.(n));
  });
  source.addEventListener('service-event', (e) => {
    const ev = JSON.parse((e as MessageEvent).data) as ServiceEvent;
    listeners.forEach((l) => l.service?.(ev));
  });
}

export function disconnectEvents() {
  source?.close();
  source = null;
}

export function subscribe(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}
