/** Zod's validation issues as lines a user can act on: where (as config.json writes it), and what. */
import type { z } from 'zod';
import { KNOWN_KEYS } from './schema';

/** `others["10.10.1.3"].index` rather than `others,10.10.1.3,index`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(String(key))) out += out ? `.${String(key)}` : String(key);
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out || '(top level)';
}

export function describeIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    const where = formatPath(issue.path);
    switch (issue.code) {
      case 'unrecognized_keys':
        return `${where}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map(withSuggestion).join(', ')}`;
      case 'invalid_key':
        return `${where}: bad address: ${issue.issues.map((inner) => inner.message).join('; ')}`;
      default:
        return `${where}: ${issue.message}`;
    }
  });
}

/** `"roudns" (did you mean "rounds"?)` for a key one or two typos away from a known one. */
function withSuggestion(key: string): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const known of KNOWN_KEYS) {
    const d = editDistance(key.toLowerCase(), known);
    if (d < bestDistance) [best, bestDistance] = [known, d];
  }
  return best ? `"${key}" (did you mean "${best}"?)` : `"${key}"`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}
