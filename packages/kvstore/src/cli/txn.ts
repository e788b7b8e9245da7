// etcdctl's txn script format (`etcdctl txn`, read from stdin or a file):
//
//   <compare>        one per line, until an empty line:
//   ...                value("key") = "text"   version("key") > 2   create("key") = "0"
//                      mod("key") < 10          lease("key") != 694d7a1b2c3d   (= != < >)
//   <empty line>
//   <success op>     one per line, until an empty line:   put key value [--lease=ID] [--prev-kv]
//   ...                get key [range_end] [--prefix] [--from-key] [--limit=N] [--rev=N] [--keys-only] [--count-only]
//   <empty line>       del key [range_end] [--prefix] [--from-key] [--prev-kv]
//   <failure op>     one per line, until an empty line or the end
//
// Words are separated by spaces; a word in double quotes may hold spaces and Go-style escapes
// (\" \\ \n \t \xNN). Numbers of compares may be quoted or not; a lease id is hex. Errors name
// the line: "txn line 3: ...".

import type { Compare, CompareResult, RequestOp, TxnRequest } from '../types.js';
import { UsageError, bytes, keyRange, parseIntArg, parseLeaseId } from './args.js';

const RESULTS: Record<string, CompareResult> = { '=': 'equal', '!=': 'not_equal', '<': 'less', '>': 'greater' };

/** Splits a line into words (double quotes group, with escapes). */
export function splitWords(line: string, where: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i]!)) i++;
    if (i >= line.length) break;
    if (line[i] === '"') {
      const [s, next] = unquote(line, i, where);
      // A quoted word may continue unquoted (--lease="abc" style is written as one word).
      words.push(s);
      i = next;
    } else {
      let w = '';
      while (i < line.length && !/\s/.test(line[i]!)) {
        if (line[i] === '"') {
          const [s, next] = unquote(line, i, where);
          w += s;
          i = next;
        } else w += line[i++];
      }
      words.push(w);
    }
  }
  return words;
}

/** Reads a double-quoted string starting at line[start] === '"'; returns the text and the index after it. */
function unquote(line: string, start: number, where: string): [string, number] {
  let out = '';
  let i = start + 1;
  while (i < line.length) {
    const c = line[i]!;
    if (c === '"') return [out, i + 1];
    if (c === '\\') {
      const n = line[i + 1];
      if (n === undefined) break;
      const simple: Record<string, string> = { '"': '"', '\\': '\\', n: '\n', t: '\t', r: '\r', '0': '\0', "'": "'" };
      if (n in simple) {
        out += simple[n];
        i += 2;
        continue;
      }
      if (n === 'x' && /^[0-9a-fA-F]{2}$/.test(line.slice(i + 2, i + 4))) {
        out += String.fromCharCode(Number.parseInt(line.slice(i + 2, i + 4), 16));
        i += 4;
        continue;
      }
      throw new UsageError(`${where}: unknown escape \\${n} in a quoted string`);
    }
    out += c;
    i++;
  }
  throw new UsageError(`${where}: a quoted string is not closed`);
}

const COMPARE = /^\s*(value|version|create|mod|lease)\s*\(\s*"((?:[^"\\]|\\.)*)"\s*\)\s*(!=|=|<|>)\s*(.*?)\s*$/;

export function parseCompare(line: string, where: string): Compare {
  const m = COMPARE.exec(line);
  if (!m) {
    throw new UsageError(
      `${where}: expected a compare like value("key") = "v", version("key") > 1, create("key") = 0, mod("key") < 5 or lease("key") = 694d..., got "${line.trim()}"`,
    );
  }
  const [, target, rawKey, op, rawValue] = m as unknown as [string, string, string, string, string];
  const [key] = unquote(`"${rawKey}"`, 0, where);
  const words = splitWords(rawValue, where);
  if (words.length !== 1) throw new UsageError(`${where}: expected one value after "${op}", got "${rawValue}"`);
  const value = words[0]!;
  const base = { key: bytes(key), result: RESULTS[op]! };
  switch (target) {
    case 'value':
      return { ...base, target: 'value', value: bytes(value) };
    case 'version':
      return { ...base, target: 'version', version: parseIntArg(`${where}: version`, value) };
    case 'create':
      return { ...base, target: 'create', createRevision: parseIntArg(`${where}: create`, value) };
    case 'mod':
      return { ...base, target: 'mod', modRevision: parseIntArg(`${where}: mod`, value) };
    default:
      return { ...base, target: 'lease', lease: value === '0' ? 0 : parseLeaseId(`${where}: lease`, value) };
  }
}

/** Splits words into positional arguments and --flag[=value] options (booleans have no value). */
function options(words: readonly string[], allowed: Record<string, 'bool' | 'value'>, where: string): { args: string[]; flags: Map<string, string | true> } {
  const args: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (!w.startsWith('--')) {
      args.push(w);
      continue;
    }
    const eq = w.indexOf('=');
    const name = eq > 0 ? w.slice(2, eq) : w.slice(2);
    const kind = allowed[name];
    if (kind === undefined) throw new UsageError(`${where}: unknown flag --${name} (allowed: ${Object.keys(allowed).map((f) => `--${f}`).join(' ')})`);
    if (kind === 'bool') {
      if (eq > 0 && !['true', 'false'].includes(w.slice(eq + 1))) throw new UsageError(`${where}: --${name} takes no value other than true/false`);
      if (eq < 0 || w.slice(eq + 1) === 'true') flags.set(name, true);
    } else if (eq > 0) flags.set(name, w.slice(eq + 1));
    else {
      const v = words[++i];
      if (v === undefined) throw new UsageError(`${where}: --${name} needs a value`);
      flags.set(name, v);
    }
  }
  return { args, flags };
}

function str(v: string | true | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function parseOp(line: string, where: string): RequestOp {
  const words = splitWords(line, where);
  const verb = words[0];
  const rest = words.slice(1);
  switch (verb) {
    case 'put': {
      const { args, flags } = options(rest, { lease: 'value', 'prev-kv': 'bool' }, where);
      if (args.length !== 2) throw new UsageError(`${where}: put needs a key and a value (put key value [--lease=ID] [--prev-kv]), got ${args.length} arguments`);
      if (args[0] === '') throw new UsageError(`${where}: put: the key must not be empty`);
      const lease = str(flags.get('lease'));
      return {
        put: {
          key: bytes(args[0]!),
          value: bytes(args[1]!),
          ...(lease !== undefined ? { lease: parseLeaseId(`${where}: --lease`, lease) } : {}),
          ...(flags.has('prev-kv') ? { prevKv: true } : {}),
        },
      };
    }
    case 'get': {
      const { args, flags } = options(
        rest,
        { prefix: 'bool', 'from-key': 'bool', limit: 'value', rev: 'value', 'keys-only': 'bool', 'count-only': 'bool' },
        where,
      );
      if (args.length < 1 || args.length > 2) throw new UsageError(`${where}: get needs a key and an optional range_end, got ${args.length} arguments`);
      const range = keyRange(`${where}: get`, args[0]!, args[1], { prefix: flags.has('prefix'), fromKey: flags.has('from-key') });
      const limit = str(flags.get('limit'));
      const rev = str(flags.get('rev'));
      return {
        range: {
          ...range,
          ...(limit !== undefined ? { limit: parseIntArg(`${where}: --limit`, limit) } : {}),
          ...(rev !== undefined ? { revision: parseIntArg(`${where}: --rev`, rev) } : {}),
          ...(flags.has('keys-only') ? { keysOnly: true } : {}),
          ...(flags.has('count-only') ? { countOnly: true } : {}),
        },
      };
    }
    case 'del':
    case 'delete': {
      const { args, flags } = options(rest, { prefix: 'bool', 'from-key': 'bool', 'prev-kv': 'bool' }, where);
      if (args.length < 1 || args.length > 2) throw new UsageError(`${where}: del needs a key and an optional range_end, got ${args.length} arguments`);
      const range = keyRange(`${where}: del`, args[0]!, args[1], { prefix: flags.has('prefix'), fromKey: flags.has('from-key') });
      return { deleteRange: { ...range, ...(flags.has('prev-kv') ? { prevKv: true } : {}) } };
    }
    default:
      throw new UsageError(`${where}: expected an operation (put, get or del), got "${verb ?? ''}"`);
  }
}

/** Parses a whole txn script (compares, blank line, success ops, blank line, failure ops). */
export function parseTxnScript(script: string): TxnRequest {
  const lines = script.replace(/\r\n/g, '\n').split('\n');
  const sections: { line: number; text: string }[][] = [[], [], []];
  let section = 0;
  lines.forEach((text, i) => {
    if (text.trim() === '') {
      section++;
      return;
    }
    if (section > 2) throw new UsageError(`txn line ${i + 1}: unexpected text after the failure operations (a txn has three sections separated by empty lines)`);
    sections[section]!.push({ line: i + 1, text });
  });
  const compare = sections[0]!.map((l) => parseCompare(l.text, `txn line ${l.line}`));
  const success = sections[1]!.map((l) => parseOp(l.text, `txn line ${l.line}`));
  const failure = sections[2]!.map((l) => parseOp(l.text, `txn line ${l.line}`));
  return { compare, success, failure };
}
