/**
 * Shaping a link with tc: a token bucket (tbf) sets the rate; netem, where the kernel has it, adds
 * delay and loss under it. Each machine's link is shaped at both of its veth's ends' egress: its
 * own end (what it sends) and the bridge's end (what it receives).
 */
import type { LinkShape } from '../config/schema';

/**
 * The bucket holds at least 64 KB and 5 ms at the rate: a smaller bucket than the kernel's timer
 * tick moves at the rate allows caps a fast link well below it.
 */
export function burstBytes(rateMbit: number): number {
  return Math.max(64 * 1024, Math.ceil(((rateMbit * 1e6) / 8) * 0.005));
}

/** The tc commands (arguments of `tc`) that give `dev` this shape; netem's part only where the kernel has netem. */
export function shapeCommands(dev: string, link: LinkShape, withNetem: boolean): string[][] {
  const tbf = ['qdisc', 'replace', 'dev', dev, 'root', 'handle', '1:', 'tbf', 'rate', `${link.rate_mbit}mbit`, 'burst', String(burstBytes(link.rate_mbit)), 'latency', '100ms'];
  const commands = [tbf];
  const netem = netemArgs(link);
  if (withNetem && netem.length) commands.push(['qdisc', 'replace', 'dev', dev, 'parent', '1:1', 'handle', '10:', 'netem', ...netem]);
  return commands;
}

function netemArgs(link: LinkShape): string[] {
  return [...(link.delay_ms ? ['delay', `${link.delay_ms}ms`] : []), ...(link.loss_percent ? ['loss', `${link.loss_percent}%`] : [])];
}

/** Whether a link asks for what only netem gives. */
export const needsNetem = (link?: LinkShape) => !!link && netemArgs(link).length > 0;

export function describeLink(link?: LinkShape): string {
  if (!link) return 'not shaped';
  const extra = [link.delay_ms ? `${link.delay_ms} ms delay` : '', link.loss_percent ? `${link.loss_percent}% loss` : ''].filter(Boolean);
  return `${link.rate_mbit} Mbit/s${extra.length ? `, ${extra.join(', ')}` : ''}`;
}
