/**
 * Builds the web UI into dist/web/ of the package, which the gateway serves on the API port
 * (src/api/web-ui.ts). Hashed file names under assets/ let the gateway mark them immutable.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    assetsDir: 'assets',
    // Every browser the UI supports knows modulepreload: no polyfill in the bundle.
    modulePreload: { polyfill: false },
    sourcemap: true,
    target: 'es2022',
  },
  server: {
    // `npx vite web` for development, in front of a gateway on the default API port.
    proxy: { '/api': 'http://127.0.0.1:7070', '/healthz': 'http://127.0.0.1:7070' },
  },
});
