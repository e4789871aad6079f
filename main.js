#!/usr/bin/env node
// Entry point for every testbed machine; the TypeScript build lives in dist/ (made by `npm install`).
// Node 22 and later keep V8's compiled code between runs (in the OS's temp folder): each process
// starts about 0.14 s sooner (0.52 s to 0.38 s for `main.js --help` on Node 24). Node 20 has no cache.
require('node:module').enableCompileCache?.();
require('./dist/main.js');
