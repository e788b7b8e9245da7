// Flow control for watch sinks over real transports, so the hub can see a slow consumer (and
// cancel it past its bound) instead of the bytes piling up, unbounded, in a socket's user-space
// buffer. Front ends (the JSON gateway's streamed /v3/watch, the native WebSocket server) wrap
// their `send` with one of these.

import type { Writable } from 'node:stream';

import type { WatchResponse } from '../types.js';
import type { FlowControlledSink } from './hub.js';

/** Default: above 1 MiB waiting in the transport's buffer, a watcher counts as congested. */
export const DEFAULT_SINK_HIGH_WATER_BYTES = 1024 * 1024;

/** One drain dispatcher per transport, shared by all the watchers multiplexed on it. */
class DrainFanout {
  readonly listeners = new Set<() => void>();
  fire(): void {
    for (const l of [...this.listeners]) l();
  }
}

const streamFanouts = new WeakMap<Writable, DrainFanout>();

/**
 * A sink writing to a Node writable stream (an HTTP response): congested while more than
 * `highWaterBytes` wait in the stream's buffer; its 'drain' event resumes the hub.
 */
export function writableStreamSink(
  stream: Writable,
  send: (res: WatchResponse) => void,
  highWaterBytes: number = DEFAULT_SINK_HIGH_WATER_BYTES,
): FlowControlledSink {
  let fanout = streamFanouts.get(stream);
  if (fanout === undefined) {
    const f = new DrainFanout();
    stream.on('drain', () => f.fire());
    streamFanouts.set(stream, f);
    fanout = f;
  }
  const shared = fanout;
  return {
    send,
    get writable(): boolean {
      return !stream.destroyed && stream.writableLength <= highWaterBytes;
    },
    onDrain(listener: () => void): () => void {
      shared.listeners.add(listener);
      return () => shared.listeners.delete(listener);
    },
  };
}

/** What the sink needs of a WebSocket (the `ws` package's WebSocket has it). */
export interface BufferedSocket {
  readonly bufferedAmount: number;
  readonly readyState: number;
}

interface SocketFanout extends DrainFanout {
  timer: NodeJS.Timeout | null;
}

const socketFanouts = new WeakMap<BufferedSocket, SocketFanout>();

/**
 * A sink writing to a WebSocket: congested while more than `highWaterBytes` are buffered
 * (ws.bufferedAmount). ws has no 'drain' event, so while some watcher waits, one timer per socket
 * polls every `pollMs` and resumes the watchers once the buffer is back under the mark (the timer
 * stops when nobody waits).
 */
export function webSocketSink(
  socket: BufferedSocket,
  send: (res: WatchResponse) => void,
  highWaterBytes: number = DEFAULT_SINK_HIGH_WATER_BYTES,
  pollMs = 10,
): FlowControlledSink {
  let fanout = socketFanouts.get(socket);
  if (fanout === undefined) {
    fanout = Object.assign(new DrainFanout(), { timer: null });
    socketFanouts.set(socket, fanout);
  }
  const f = fanout;
  const OPEN = 1;
  const writable = (): boolean => socket.readyState === OPEN && socket.bufferedAmount <= highWaterBytes;
  const stopTimer = (): void => {
    if (f.timer !== null) clearInterval(f.timer);
    f.timer = null;
  };
  const ensureTimer = (): void => {
    if (f.timer !== null) return;
    f.timer = setInterval(() => {
      if (f.listeners.size === 0 || socket.readyState > OPEN) {
        stopTimer();
        return;
      }
      if (writable()) {
        stopTimer(); // restarted by the next congestion
        f.fire();
      }
    }, pollMs);
    f.timer.unref();
  };
  return {
    send: (res) => {
      send(res);
      if (!writable()) ensureTimer();
    },
    get writable(): boolean {
      const w = writable();
      if (!w) ensureTimer();
      return w;
    },
    onDrain(listener: () => void): () => void {
      f.listeners.add(listener);
      return () => {
        f.listeners.delete(listener);
        if (f.listeners.size === 0) stopTimer();
      };
    },
  };
}
