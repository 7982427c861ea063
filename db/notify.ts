/**
 * PostgreSQL LISTEN/NOTIFY on a connection of its own: how cluster nodes tell each other about
 * commands and committed events. A LISTEN lives on one session, so it does not survive a pooler in
 * transaction mode (PgBouncer's `pool_mode = transaction`): see docs/cluster.md.
 */
import postgres from "postgres";

/** A channel this process listens on and notifies through. */
export interface NotifyChannel {
  /** Sends `payload` (at most 8000 bytes) to every listener, this process included. */
  notify(payload: string): Promise<void>;
  close(): Promise<void>;
}

/** PostgreSQL's limit on a NOTIFY payload. */
export const MAX_NOTIFY_BYTES = 8000;

/**
 * Listens on `channel` at `url`; `onPayload` gets every notification. The driver reconnects and
 * listens again after a lost connection (notifications sent meanwhile are lost).
 */
export async function listenChannel(
  url: string,
  channel: string,
  onPayload: (payload: string) => void,
): Promise<NotifyChannel> {
  const client = postgres(url, { max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    await client.listen(channel, onPayload);
  } catch (error) {
    await client.end({ timeout: 1 });
    throw error;
  }
  return {
    async notify(payload) {
      await client.notify(channel, payload);
    },
    close: () => client.end({ timeout: 2 }),
  };
}
