/**
 * One end of a link measurement, run inside a testbed namespace (`ip netns exec`):
 *   rate-probe sink <host> <port>          prints "listening", then {"bytes", "ms"} of the one stream it takes
 *   rate-probe source <host> <port> <ms>   sends as fast as TCP lets it for <ms>
 * The rate is counted at the sink from the first byte to the last: what the application gets.
 */
import { createConnection, createServer } from 'node:net';

function sink(host: string, port: number): void {
  const server = createServer((socket) => {
    let bytes = 0;
    let first = 0;
    socket.on('data', (chunk) => {
      if (!bytes) first = performance.now();
      bytes += chunk.length;
    });
    socket.on('end', () => {
      process.stdout.write(JSON.stringify({ bytes, ms: performance.now() - first }) + '\n');
      server.close();
      socket.destroy();
    });
  });
  server.listen(port, host, () => process.stdout.write('listening\n'));
}

function source(host: string, port: number, ms: number): void {
  const block = Buffer.alloc(256 * 1024, 0x5a);
  const socket = createConnection({ host, port }, () => {
    const until = performance.now() + ms;
    const pump = () => {
      while (performance.now() < until) if (!socket.write(block)) return void socket.once('drain', pump);
      socket.end();
    };
    pump();
  });
  socket.on('error', (err) => {
    console.error(`rate-probe: ${err.message}`);
    process.exitCode = 1;
  });
}

const [mode, host, port, ms] = process.argv.slice(2);
if (mode === 'sink') sink(host, Number(port));
else if (mode === 'source') source(host, Number(port), Number(ms));
else {
  console.error('usage: rate-probe sink <host> <port> | source <host> <port> <ms>');
  process.exitCode = 2;
}
