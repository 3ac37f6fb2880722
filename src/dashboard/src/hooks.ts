// Small hooks the views share: a loader that refreshes on an interval and keeps the last good
// answer while showing the error of a failed refresh.
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';

export type Loaded<T> = {
  data: T | undefined;
  error: string;
  loading: boolean;
  reload: () => void;
};

export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[], everyMs = 0): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState('');
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  const loadRef = useRef(load);
  loadRef.current = load;
  useLayoutEffect(() => {
    setData(undefined);
    setLoading(true);
  }, deps);
  // A layout effect, not an effect: the request leaves as soon as the view is in the DOM,
  // instead of after the next frame is painted (a frame sooner for the first page).
  useLayoutEffect(() => {
    const ctl = new AbortController();
    loadRef
      .current(ctl.signal)
      .then((d) => {
        setData(d);
        setError('');
      })
      .catch((e: Error) => {
        if (e.name !== 'AbortError') setError(e.message);
      })
      .finally(() => setLoading(false));
    return () => ctl.abort();
  }, [...deps, tick]);
  useEffect(() => {
    if (!everyMs) return;
    const t = setInterval(() => {
      if (document.visibilityState === 'visible') reload();
    }, everyMs);
    return () => clearInterval(t);
  }, [everyMs, ...deps]);
  return { data, error, loading, reload };
}

// Runs an action, remembering whether it is busy and the server's message when it fails.
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const run = useCallback(async (f: () => Promise<unknown>) => {
    setBusy(true);
    setError('');
    try {
      await f();
      return true;
    } catch (e) {
      setError((e as Error).message);
      return false;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, setError };
}
