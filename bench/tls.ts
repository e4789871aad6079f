/**
 * 10. What mutual TLS costs a round: the demo's shape (12 clients, 2 switches) on loopback, plaintext
 * and HE, with plain HTTP and with TLS. Bytes are counted on the TCP socket, so TLS's handshakes and
 * record overhead are in them.
 *   npm run bench -- tls       only this section, the others kept from bench/results.json
 */
import { fixed as n, megabytes as mb } from './common';
import { testbedRun, type TestbedRun } from './testbed-runs';

export interface TlsRun {
  mode: string;
  tls: boolean;
  run: TestbedRun;
}

export interface TlsResults {
  command: string;
  runs: TlsRun[];
}

const MODES = [
  { mode: 'plaintext float32', he: false },
  { mode: 'HE, key at the aggregator', he: true },
];

export async function tlsComparison(quick: boolean, command: string): Promise<TlsResults> {
  const rounds = quick ? 3 : 10;
  const runs: TlsRun[] = [];
  for (const [m, { mode, he }] of MODES.entries()) {
    for (const tls of [false, true]) {
      const run = await testbedRun({ name: `tls-${m}-${tls ? 'on' : 'off'}`, clients: 12, switches: 2, rounds, he, tls, base: '127.0.5' });
      runs.push({ mode, tls, run });
    }
  }
  return { command, runs };
}


export function formatTls(t: TlsResults | undefined): string[] {
  if (!t) return [];
  const rounds = t.runs[0].run.rounds;
  const rows = t.runs.map(({ mode, tls, run }) => {
    const plain = t.runs.find((r) => r.mode === mode && !r.tls)!.run;
    const vs = (a: number, b: number) => (tls ? ` (${a >= b ? '+' : ''}${n(((a - b) / b) * 100, 1)}%)` : '');
    return `| ${mode} | ${tls ? 'mutual TLS' : 'plain HTTP'} | ${n(run.round_s, 2)}${vs(run.round_s, plain.round_s)} | ${mb(run.bytes_per_round_at_aggregator)}${vs(run.bytes_per_round_at_aggregator, plain.bytes_per_round_at_aggregator)} | ${mb(run.update_bytes)} | ${n(run.final_accuracy * 100, 2)}% |`;
  });
  return [
    '## 10. What mutual TLS costs',
    '',
    `Made by \`${t.command}\`. 12 clients on 2 switches, ${rounds} rounds, on loopback, each mode with plain HTTP and with`,
    'mutual TLS (TLS 1.3, RSA 2048 certificates from the testbed CA). Bytes are counted on the TCP socket under TLS, so',
    'handshakes and record overhead are in them; connections are kept alive, so a handshake is paid once per peer, not per request.',
    '',
    '| mode | transport | round (s) | bytes at the aggregator per round (MB) | a client\'s update (MB) | final accuracy |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    'Medians of the steady rounds (all but the first). On loopback the round times move by a few percent between runs.',
    '',
  ];
}
