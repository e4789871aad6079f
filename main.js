#!/usr/bin/env node
// Entry point for every testbed machine; the TypeScript build lives in dist/ (made by `npm install`).
// Node 22.1 and later keep V8's compiled code between runs (in the OS's temp folder): `main.js --help`
// took 0.37 s for 0.43 s on Node 24 here, the modules every process loads (0.42 s on Node 20, which has
// no cache). A command's heavy modules load as it runs (main.ts).
require('node:module').enableCompileCache?.();
require('./dist/main.js');
