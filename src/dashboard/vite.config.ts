// The build berth embeds: every asset flat under /_berth/ui/ (the daemon serves that folder),
// named by content hash. `npm run dev` proxies the API to the daemon at $BERTH_URL
// (default http://127.0.0.1:8080).
import { defineConfig } from 'vite';

const daemon = process.env.BERTH_URL || 'http://127.0.0.1:8080';

export default defineConfig({
  base: '/_berth/ui/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { assetsDir: '', outDir: 'dist', emptyOutDir: true, target: 'es2022' },
  server: {
    proxy: { '/api': daemon, '/_berth/login': daemon, '/_berth/logout': daemon },
  },
});
