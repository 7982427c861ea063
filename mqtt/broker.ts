/** The embedded MQTT broker: aedes in-process, listening on loopback. */
import { Aedes } from "aedes";
import { Buffer } from "node:buffer";
import { Duplex } from "node:stream";

/** The broker's port when none is configured: MQTT's registered port. */
export const DEFAULT_MQTT_PORT = 1883;

/** Options for {@linkcode startEmbeddedBroker}. */
export interface EmbeddedBrokerOptions {
  /** TCP port; 0 picks a free one. Defaults to 1883. */
  port?: number;
  /** Listening address; loopback by default so the broker is never exposed by accident. */
  host?: string;
  /** Told when a client id gets its first connection (true) or loses its last one (false). */
  onPresence?: (clientId: string, online: boolean) => void;
  /**
   * Told when accepting a connection fails, for instance when the process is out of open files
   * (EMFILE): the connection is refused and the broker keeps listening, after a short pause.
   */
  onAcceptError?: (error: Error) => void;
}

/** The first pause after a failed accept; it doubles up to {@linkcode ACCEPT_BACKOFF_MAX_MS}. */
export const ACCEPT_BACKOFF_MIN_MS = 5;
/** The longest pause between accepts while they keep failing. */
export const ACCEPT_BACKOFF_MAX_MS = 1000;

/** A running embedded broker. */
export interface EmbeddedBroker {
  /** `mqtt://host:port`, for clients. */
  readonly url: string;
  /** The bound port (the real one when 0 was asked for). */
  readonly port: number;
  readonly host: string;
  /** Disconnects every client and stops listening. */
  close(): Promise<void>;
}

/** The broker's port is already bound by another process. */
export class PortInUseError extends Error {
  readonly port: number;
  readonly host: string;

  constructor(host: string, port: number, options?: ErrorOptions) {
    super(`Cannot start MQTT broker: port ${port} on "${host}" is already in use`, options);
    this.name = "PortInUseError";
    this.port = port;
    this.host = host;
  }
}

/** Starts aedes on `host:port`; rejects with PortInUseError when the port is taken. */
export async function startEmbeddedBroker(
  options: EmbeddedBrokerOptions = {},
): Promise<EmbeddedBroker> {
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? DEFAULT_MQTT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`Invalid MQTT port: ${port} is not between 0 and 65535`);
  }
  const aedes = await Aedes.createBroker();
  if (options.onPresence) watchPresence(aedes, options.onPresence);
  const conns = new Map<Deno.Conn, { stream: Duplex; closed: Promise<void> }>();
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: host, port, transport: "tcp" });
  } catch (error) {
    await closeAedes(aedes);
    if (error instanceof Deno.errors.AddrInUse) {
      throw new PortInUseError(host, port, { cause: error });
    }
    throw error;
  }
  let stopped = false;
  // node:net's server stops accepting for good after an EMFILE, silently; this loop refuses the
  // one connection (the kernel resets it once the backlog is full) and tries again after a pause.
  const accepting = (async () => {
    let backoff = 0;
    while (!stopped) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (stopped) return;
        options.onAcceptError?.(error as Error);
        backoff = Math.min(Math.max(backoff * 2, ACCEPT_BACKOFF_MIN_MS), ACCEPT_BACKOFF_MAX_MS);
        await new Promise((resolve) => setTimeout(resolve, backoff));
        continue;
      }
      backoff = 0;
      try {
        // Without it every small MQTT packet waits on Nagle's algorithm and the peer's delayed ACK.
        (conn as Deno.TcpConn).setNoDelay(true);
      } catch { /* the peer is already gone */ }
      const stream = toDuplex(conn);
      const done = new Promise<void>((resolve) =>
        stream.once("close", () => {
          conns.delete(conn);
          resolve();
        })
      );
      conns.set(conn, { stream, closed: done });
      aedes.handle(stream);
    }
  })();
  const bound = (listener.addr as Deno.NetAddr).port;
  let closing: Promise<void> | undefined;
  return {
    url: `mqtt://${host.includes(":") ? `[${host}]` : host}:${bound}`,
    port: bound,
    host,
    close() {
      closing ??= (async () => {
        stopped = true;
        listener.close();
        await accepting;
        await closeAedes(aedes);
        for (const conn of conns.keys()) closeQuietly(conn);
        // aedes closes its clients; a connection still mid-handshake is not yet its client.
        const open = [...conns.values()];
        for (const { stream } of open) stream.destroy();
        await Promise.all(open.map(({ closed }) => closed));
        // One turn of the event loop, so a client in this process sees its connection end.
        await new Promise((resolve) => setTimeout(resolve, 0));
      })();
      return closing;
    },
  };
}

/**
 * Bytes read from a connection at a time. MQTT packets are small; a read that is pending holds its
 * buffer, so with thousands of idle devices this is most of a connection's memory (web streams
 * read 64 KiB at a time).
 */
const READ_BUFFER_BYTES = 4096;

/** A Deno connection as the node stream aedes reads and writes. */
function toDuplex(conn: Deno.Conn): Duplex {
  const stream = new ConnStream(conn);
  stream.on("error", () => {});
  return stream;
}

class ConnStream extends Duplex {
  #conn: Deno.Conn;
  #reading = false;
  #buffer = new Uint8Array(READ_BUFFER_BYTES);

  constructor(conn: Deno.Conn) {
    super();
    this.#conn = conn;
  }

  override _read(): void {
    if (this.#reading) return;
    this.#reading = true;
    this.#readLoop();
  }

  async #readLoop(): Promise<void> {
    try {
      while (!this.destroyed) {
        const n = await this.#conn.read(this.#buffer);
        if (n === null) {
          this.push(null);
          return;
        }
        if (!this.push(Buffer.from(this.#buffer.subarray(0, n)))) {
          this.#reading = false;
          return;
        }
      }
    } catch (error) {
      this.destroy(error as Error);
    }
  }

  override _write(
    chunk: Uint8Array,
    _encoding: string,
    callback: (error?: Error | null) => void,
  ): void {
    writeAll(this.#conn, chunk).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    (this.#conn as Deno.TcpConn).closeWrite().then(() => callback(), () => callback());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    closeQuietly(this.#conn);
    callback(error);
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

function closeQuietly(conn: Deno.Conn) {
  try {
    conn.close();
  } catch { /* already closed */ }
}

function closeAedes(aedes: Aedes): Promise<void> {
  return new Promise((resolve) => aedes.close(() => resolve()));
}

/**
 * Reports presence per client id. Connections are counted, since a client taking over its own
 * session connects again before aedes reports its old connection gone.
 */
function watchPresence(aedes: Aedes, onPresence: (clientId: string, online: boolean) => void) {
  const open = new Map<string, Set<unknown>>();
  aedes.on("client", (client) => {
    const connections = open.get(client.id) ?? new Set();
    connections.add(client);
    open.set(client.id, connections);
    if (connections.size === 1) onPresence(client.id, true);
  });
  aedes.on("clientDisconnect", (client) => {
    const connections = open.get(client.id);
    if (!connections?.delete(client)) return;
    if (connections.size > 0) return;
    open.delete(client.id);
    onPresence(client.id, false);
  });
}
