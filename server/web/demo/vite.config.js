// Vite build of the demo page. Output: dist/ (the default web root of
// `tandem serve` when it exists, see docs/SERVER.md); hashed files under
// dist/assets/. The client library is imported from its source
// (server/web/client/src) through an alias; its one dependency, cbor-x, is
// a dependency of this package too and resolved from here (dedupe), so the
// demo builds without an install in ../client.
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

export default defineConfig({
  base: '/',
  resolve: {
    alias: {
      '@tandem/client': fileURLToPath(new URL('../client/src/index.js', import.meta.url)),
    },
    dedupe: ['cbor-x'],
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
    target: 'es2022',
    chunkSizeWarningLimit: 1024,
  },
  server: {
    // `npm run dev`: the page on vite's port, the API and WebSocket proxied
    // to a `tandem serve --dev` on 8080.
    proxy: {
      '/api': 'http://127.0.0.1:8080',
      '/healthz': 'http://127.0.0.1:8080',
      '/ws': { target: 'ws://127.0.0.1:8080', ws: true },
    },
  },
});
