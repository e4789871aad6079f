/**
 * 11. node-seal 6.0.3 (what the project runs) against 7.0.0 (ESM only, needs Node 22+), the same
 * CKKS steps at the default parameters (N=4096, one 54-bit prime, scale 2^45) on 100k values:
 * 6.0.3 on this Node, 6.0.3 on Node 24, 7.0.0 on Node 24. Node 24 is the npm package `node`
 * in .node24/ (`npm install --prefix .node24 node@24`, as .ci/run does); without it the Node 24
 * rows are left out, saying why.
 *   npm run bench -- seal      only this section, the others kept from bench/results.json
 * Each measurement runs in a process of its own: `node dist/bench/seal-versions.js probe 6|7`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fixed, ROOT } from './common';

const N = 4096;
const BITS = [54];
const SCALE = 2 ** 45;
const VALUES = 100_000;
const REPEATS = 5;
export const NODE_24 = join(ROOT, '.node24', 'node_modules', 'node', 'bin', 'node');

export type SealStep = 'load' | 'keygen' | 'encode' | 'encrypt' | 'add' | 'save' | 'load_ciphertexts' | 'decrypt';

export interface SealRow {
  seal: string;
  node: string;
  /** Best of REPEATS, milliseconds, for all the ciphertexts of 100k values. */
  ms: Record<SealStep, number>;
  ciphertext_bytes: number;
  max_error: number;
}

export interface SealResults {
  command: string;
  rows: SealRow[];
  skipped?: string;
}

// TypeScript compiles import() to require() under CommonJS; node-seal 7 can only be imported.
const importEsm = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<{ default: () => Promise<any> }>;

/** The calls that differ between the two versions, and nothing else. */
interface Seal {
  context(): any;
  keys(context: any): { secretKey: any; publicKey: any; dispose(): void };
  encoder(context: any): any;
  slots(encoder: any): number;
  plain(): any;
  cipher(): any;
  encryptor(context: any, publicKey: any): any;
  encrypt(encryptor: any, plain: any): any;
  decode(encoder: any, plain: any): Float64Array;
  save(cipher: any): Uint8Array;
  load(cipher: any, context: any, bytes: Uint8Array): void;
  construct(name: 'Evaluator' | 'Decryptor', ...args: any[]): any;
}

async function loadSeal(version: string): Promise<Seal> {
  if (version === '6') {
    const s = await (require('node-seal/throws_wasm_node_umd.js') as () => Promise<any>)();
    return {
      context() {
        const parms = s.EncryptionParameters(s.SchemeType.ckks);
        parms.setPolyModulusDegree(N);
        parms.setCoeffModulus(s.CoeffModulus.Create(N, Int32Array.from(BITS)));
        const context = s.Context(parms, true, s.SecurityLevel.tc128);
        parms.delete();
        return context;
      },
      keys(context) {
        const generator = s.KeyGenerator(context);
        const keys = { secretKey: generator.secretKey(), publicKey: generator.createPublicKey() };
        return { ...keys, dispose: () => (keys.secretKey.delete(), keys.publicKey.delete(), generator.delete()) };
      },
      encoder: (context) => s.CKKSEncoder(context),
      slots: (encoder) => encoder.slotCount,
      plain: () => s.PlainText(),
      cipher: () => s.CipherText(),
      encryptor: (context, publicKey) => s.Encryptor(context, publicKey),
      encrypt: (encryptor, plain) => encryptor.encrypt(plain),
      decode: (encoder, plain) => encoder.decode(plain),
      save: (cipher) => cipher.saveArray(s.ComprModeType.none),
      load: (cipher, context, bytes) => cipher.loadArray(context, bytes),
      construct: (name, ...args) => s[name](...args),
    };
  }
  const s = await (await importEsm('node-seal-7')).default();
  return {
    context() {
      const parms = new s.EncryptionParameters(s.SchemeType.ckks);
      parms.setPolyModulusDegree(N);
      const moduli = s.CoeffModulus.Create(N, Int32Array.from(BITS));
      parms.setCoeffModulus(moduli);
      moduli.delete();
      const context = new s.SEALContext(parms, true, s.SecLevelType.tc128);
      parms.delete();
      return context;
    },
    keys(context) {
      const generator = new s.KeyGenerator(context);
      const keys = { secretKey: generator.secretKey(), publicKey: generator.createPublicKey() };
      return { ...keys, dispose: () => (keys.secretKey.delete(), keys.publicKey.delete(), generator.delete()) };
    },
    encoder: (context) => new s.CKKSEncoder(context),
    slots: (encoder) => encoder.slotCount(),
    plain: () => new s.Plaintext(),
    cipher: () => new s.Ciphertext(),
    encryptor: (context, publicKey) => new s.Encryptor(context, publicKey),
    encrypt(encryptor, plain) {
      const cipher = new s.Ciphertext();
      encryptor.encrypt(plain, cipher);
      return cipher;
    },
    decode: (encoder, plain) => encoder.decodeFloat64(plain),
    save: (cipher) => cipher.saveToArray(s.ComprModeType.none),
    load: (cipher, context, bytes) => cipher.loadFromArray(context, bytes),
    construct: (name, ...args) => new s[name](...args),
  };
}

/** Best of `REPEATS` of `step`, in ms. */
function best(step: () => void): number {
  let fastest = Infinity;
  for (let i = 0; i < REPEATS; i++) {
    const start = performance.now();
    step();
    fastest = Math.min(fastest, performance.now() - start);
  }
  return fastest;
}

/** One version's steps in this process; printed as JSON for the parent. */
async function probe(version: string): Promise<Omit<SealRow, 'node'>> {
  const started = performance.now();
  const seal = await loadSeal(version);
  const load = performance.now() - started;
  const context = seal.context();
  let keys = seal.keys(context);
  const keygen = best(() => (keys.dispose(), (keys = seal.keys(context))));
  const encoder = seal.encoder(context);
  const slots = seal.slots(encoder);
  const values = Float64Array.from({ length: VALUES }, (_, i) => Math.sin(i) * 0.5);
  const chunks = Array.from({ length: Math.ceil(VALUES / slots) }, (_, c) => values.subarray(c * slots, (c + 1) * slots));
  const encryptor = seal.encryptor(context, keys.publicKey);
  const evaluator = seal.construct('Evaluator', context);
  const decryptor = seal.construct('Decryptor', context, keys.secretKey);
  const dispose = (objects: any[]) => objects.forEach((o) => o.delete());

  let plains: any[] = [];
  const encode = best(() => {
    dispose(plains);
    plains = chunks.map((chunk) => {
      const plain = seal.plain();
      encoder.encode(Float64Array.from(chunk), SCALE, plain);
      return plain;
    });
  });
  let ciphers: any[] = [];
  const encrypt = best(() => (dispose(ciphers), (ciphers = plains.map((plain) => seal.encrypt(encryptor, plain)))));
  // A switch's work: the sum of two updates, ciphertext by ciphertext.
  const sums = ciphers.map(() => seal.cipher());
  const add = best(() => ciphers.forEach((cipher, i) => evaluator.add(cipher, cipher, sums[i])));
  let saved: Uint8Array[] = [];
  const save = best(() => (saved = ciphers.map((cipher) => seal.save(cipher))));
  const loaded = saved.map(() => seal.cipher());
  const loadCiphertexts = best(() => saved.forEach((bytes, i) => seal.load(loaded[i], context, bytes)));
  let decoded: Float64Array[] = [];
  const decrypt = best(() => {
    decoded = loaded.map((cipher) => {
      const plain = seal.plain();
      decryptor.decrypt(cipher, plain);
      const out = seal.decode(encoder, plain);
      plain.delete();
      return out;
    });
  });
  let maxError = 0;
  chunks.forEach((chunk, c) => chunk.forEach((v, i) => (maxError = Math.max(maxError, Math.abs(decoded[c][i] - v)))));
  const ciphertextBytes = saved.reduce((n, b) => n + b.length, 0);
  dispose([...plains, ...ciphers, ...sums, ...loaded, encryptor, evaluator, decryptor, encoder, context]);
  keys.dispose();
  const ms = { load, keygen, encode, encrypt, add, save, load_ciphertexts: loadCiphertexts, decrypt };
  return { seal: version === '6' ? '6.0.3' : '7.0.0', ms, ciphertext_bytes: ciphertextBytes, max_error: maxError };
}

/** Processes per row, taken in turns with the other rows: this machine's speed drifts between minutes. */
const PROCESSES = 3;

const probeIn = (node: string, version: string): Omit<SealRow, 'node'> =>
  JSON.parse(execFileSync(node, [__filename, 'probe', version], { encoding: 'utf8', maxBuffer: 1 << 20 }));

/** Each step's best over every process of a row. */
function fastest(runs: Omit<SealRow, 'node'>[], node: string): SealRow {
  const ms = Object.fromEntries(Object.keys(runs[0].ms).map((step) => [step, Math.min(...runs.map((r) => r.ms[step as SealStep]))])) as SealRow['ms'];
  const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
  return { ...runs[0], ms, max_error: Math.max(...runs.map((r) => r.max_error)), node: version };
}

export function sealVersions(command: string): SealResults {
  const setups: [string, string][] = [[process.execPath, '6']];
  const skipped = existsSync(NODE_24) ? undefined : `no Node 24 at ${NODE_24} (npm install --prefix .node24 node@24)`;
  if (!skipped) setups.push([NODE_24, '6'], [NODE_24, '7']);
  const runs = setups.map(() => [] as Omit<SealRow, 'node'>[]);
  for (let turn = 0; turn < PROCESSES; turn++) setups.forEach(([node, version], i) => runs[i].push(probeIn(node, version)));
  return { command, rows: setups.map(([node], i) => fastest(runs[i], node)), ...(skipped ? { skipped } : {}) };
}


export function formatSeal(r: SealResults | undefined): string[] {
  if (!r) return [];
  const steps: [SealStep, string][] = [['load', 'load the wasm'], ['keygen', 'keys'], ['encode', 'encode'], ['encrypt', 'encrypt (public key)'], ['add', 'add two updates'], ['save', 'save'], ['load_ciphertexts', 'load'], ['decrypt', 'decrypt and decode']];
  return [
    '## 11. node-seal 6.0.3 and 7.0.0',
    '',
    `Made by \`${r.command}\`. The default CKKS parameters (N=4096, one 54-bit prime, scale 2^45), ${VALUES.toLocaleString('en')} values`,
    `in ${Math.ceil(VALUES / (N / 2))} ciphertexts (slots), ms: the best of ${REPEATS} in each of ${PROCESSES} processes a row, the rows taking turns. Node 24 is the npm package \`node\`.`,
    ...(r.skipped ? ['', `Node 24 rows left out: ${r.skipped}.`] : []),
    '',
    `| step | ${r.rows.map((row) => `node-seal ${row.seal} on Node ${row.node.replace(/^v/, "")}`).join(' | ')} |`,
    `| --- |${r.rows.map(() => ' --- |').join('')}`,
    ...steps.map(([step, label]) => `| ${label} | ${r.rows.map((row) => fixed(row.ms[step], 1)).join(' | ')} |`),
    `| bytes of the ciphertexts | ${r.rows.map((row) => row.ciphertext_bytes.toLocaleString('en')).join(' | ')} |`,
    `| largest error | ${r.rows.map((row) => row.max_error.toExponential(1)).join(' | ')} |`,
    '',
  ];
}

if (require.main === module && process.argv[2] === 'probe') {
  void probe(process.argv[3]).then((row) => process.stdout.write(JSON.stringify(row)));
}
