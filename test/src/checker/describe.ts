// Operations as short text a person can read, for reports and the HTML timeline.

import type { Operation } from './history.js';

/** What an operation did, without its process and lines: `write 5`, `get -> null`, `txn ...`. */
export function describeCall(op: Operation): string {
  const j = (v: unknown): string => JSON.stringify(v);
  switch (op.f) {
    case 'read':
    case 'get':
      return `${op.f} -> ${op.output === undefined ? '?' : j(op.output)}`;
    case 'write':
    case 'put':
      return `${op.f} ${j(op.value)}`;
    case 'cas':
      return `cas ${j(op.expected)} -> ${j(op.next)}`;
    case 'delete':
      return `delete${op.output === undefined ? '' : ` -> ${op.output}`}`;
    case 'txn': {
      const c = op.txn.compare;
      const cmp = c.target === 'value' ? `value == ${j(c.value)}` : `version == ${c.version}`;
      const steps = (s: readonly { readonly f: string; readonly value?: unknown }[]): string =>
        s.map((x) => (x.f === 'put' ? `put ${j(x.value)}` : x.f)).join(', ');
      const out = op.output === undefined ? '?' : `${op.output.succeeded ? 'then' : 'else'}${op.output.results === null ? '' : ` ${j(op.output.results)}`}`;
      return `txn if ${cmp} then [${steps(op.txn.then)}] else [${steps(op.txn.else)}] -> ${out}`;
    }
  }
}
