#!/usr/bin/env node
// Entry point for every testbed machine; the TypeScript build lives in dist/ (made by `npm install`).
require('./dist/main.js');
