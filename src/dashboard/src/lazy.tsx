// Views other than the services table load on first use, so that the first page parses only
// what it shows (the first paint of the services view is measured by bench/dashboard.sh).
import type { ComponentType } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ErrorBox, Loading } from './components/ui';

export function lazyView<P extends object>(load: () => Promise<ComponentType<P>>): ComponentType<P> {
  let loaded: ComponentType<P> | null = null;
  let pending: Promise<ComponentType<P>> | null = null;
  return function Lazy(props: P) {
    const [View, setView] = useState<ComponentType<P> | null>(() => loaded);
    const [error, setError] = useState('');
    useEffect(() => {
      if (View) return;
      pending ??= load().then((v) => (loaded = v));
      pending.then(
        (v) => setView(() => v),
        (e: Error) => {
          pending = null;
          setError(`this view did not load (${e.message}); reload the page`);
        },
      );
    }, []);
    if (error) return <ErrorBox error={error} />;
    return View ? <View {...props} /> : <Loading what="the view" />;
  };
}
