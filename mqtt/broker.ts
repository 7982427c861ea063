/** The embedded MQTT broker: aedes in-process, listening on loopback. */
import { Aedes } from "aedes";
import { createServer, type Server, type Socket } from "node:net";

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
}

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
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    // Without it every small MQTT packet waits on Nagle's algorithm and the peer's delayed ACK.
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    aedes.handle(socket);
  });
  try {
    await listen(server, host, port);
  } catch (error) {
    await closeAedes(aedes);
    if ((error as { code?: string }).code === "EADDRINUSE") {
      throw new PortInUseError(host, port, { cause: error });
    }
    throw error;
  }
  const bound = (server.address() as { port: number }).port;
  let closing: Promise<void> | undefined;
  return {
    url: `mqtt://${host.includes(":") ? `[${host}]` : host}:${bound}`,
    port: bound,
    host,
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        await closeAedes(aedes);
        // aedes closes its clients; a socket still mid-handshake is not yet its client.
        for (const socket of sockets) socket.destroy();
        await stopped;
      })();
      return closing;
    },
  };
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
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
