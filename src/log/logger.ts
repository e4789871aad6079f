/** The human-readable log: console plus logs/<node>.log, with secrets scrubbed from every line. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import winston from 'winston';

export type Logger = winston.Logger;

export interface LoggerOptions {
  nodeId: string;
  logsDir: string;
  level?: string;
  /** Strings that must never reach a log (tokens), or what says them when they change (a node's own token, once it knows its address). */
  secrets?: string[] | (() => string[]);
  console?: boolean;
}

const redact = (secretsNow: () => string[]) =>
  winston.format((info) => {
    const secrets = secretsNow().filter(Boolean);
    if (!secrets.length) return info;
    const scrub = (text: string) => secrets.reduce((out, secret) => out.split(secret).join('[redacted]'), text);
    for (const key of Object.keys(info)) {
      const value = info[key];
      if (typeof value === 'string') info[key] = scrub(value);
    }
    info.message = scrub(String(info.message));
    return info;
  })();

const line = winston.format.printf(({ timestamp, level, message, nodeId, ...rest }) => {
  const extra = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : '';
  return `${timestamp} ${level} [${nodeId}] ${message}${extra}`;
});

export function createLogger(options: LoggerOptions): Logger {
  mkdirSync(options.logsDir, { recursive: true });
  const given = options.secrets ?? [];
  const secrets = typeof given === 'function' ? given : () => given;
  const transports: winston.transport[] = [
    new winston.transports.File({ filename: join(options.logsDir, `${options.nodeId}.log`) }),
  ];
  if (options.console !== false) {
    transports.push(new winston.transports.Console({ format: winston.format.combine(winston.format.colorize(), line) }));
  }
  return winston.createLogger({
    level: options.level ?? 'info',
    defaultMeta: { nodeId: options.nodeId },
    format: winston.format.combine(redact(secrets), winston.format.timestamp(), line),
    transports,
  });
}

/** A file-safe node id from an address: `127.0.1.3:5000` -> `127.0.1.3-5000`. */
export function nodeIdFor(host: string, port: number): string {
  return `${host}-${port}`.replace(/[^A-Za-z0-9._-]/g, '_');
}
