import net from 'node:net';

/** A raw TCP server that answers one HTTP request and remembers every byte it read and wrote. */
export async function rawServer(reply: string) {
  let received = 0;
  let sent = 0;
  const server = net.createServer((socket) => {
    let buffered = '';
    socket.on('data', (chunk) => {
      received += chunk.length;
      buffered += chunk.toString('latin1');
      const headerEnd = buffered.indexOf('\r\n\r\n');
      const length = Number(/content-length: (\d+)/i.exec(buffered)?.[1] ?? 0);
      if (headerEnd >= 0 && buffered.length >= headerEnd + 4 + length) {
        const response = `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${reply.length}\r\nConnection: close\r\n\r\n${reply}`;
        sent += Buffer.byteLength(response);
        socket.end(response);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return { port, counts: () => ({ received, sent }), close: () => new Promise((r) => server.close(r)) };
}
