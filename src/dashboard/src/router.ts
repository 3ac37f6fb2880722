// Hash routes (#/services/hello): the daemon serves one page at /, and paths under / belong
// to the services behind the gateway, so the dashboard's own places live after the '#'.
import { useEffect, useState } from 'preact/hooks';

export function currentRoute(): string[] {
  const h = location.hash.replace(/^#\/?/, '');
  return h ? h.split('/').map(decodeURIComponent) : [];
}

export function useRoute(): string[] {
  const [route, setRoute] = useState(currentRoute());
  useEffect(() => {
    const on = () => setRoute(currentRoute());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

export function href(...parts: string[]): string {
  return '#/' + parts.map(encodeURIComponent).join('/');
}

export function go(...parts: string[]) {
  location.hash = href(...parts);
}
