/** A real artifact server, a provisioned device on disk and a server link, over a real broker. */
import { join } from "node:path";
import { provisionDevice, type RunningDevice, startDevice } from "../../device/mod.ts";
import { createSequenceAllocator } from "../../io/sequence.ts";
import {
  connectMqtt,
  createServerLink,
  type MqttConnection,
  type ServerLink,
} from "../../mqtt/mod.ts";
import type { Logger } from "../../obs/mod.ts";
import { newToken, type ResponseMessage, toHex } from "../../srup/mod.ts";
import { TEST_PRIVATE_KEY, TEST_PUBLIC_KEY } from "../_helpers.ts";
import { within } from "../mqtt/_brokers.ts";

export const FIRMWARE = new TextEncoder().encode("flotilla firmware 2.0\n".repeat(500));
export const MAX_BYTES = 64 * 1024;

/** Serves test artifacts on loopback: good, missing, failing, broken, oversized and stalled. */
export function artifactServer() {
  const stalls: (() => void)[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const path = new URL(request.url).pathname;
    switch (path) {
      case "/fw.bin":
        return new Response(FIRMWARE);
      case "/404":
        return new Response("missing", { status: 404 });
      case "/410":
        return new Response("gone", { status: 410 });
      case "/500":
        return new Response("broken server", { status: 500 });
      case "/big.bin":
        return new Response(new Uint8Array(MAX_BYTES + 1));
      case "/broken.bin":
        // Fewer bytes than the declared length, then the end: the connection is cut mid-body.
        return new Response(
          new ReadableStream({
            start(controller) {
              controller.enqueue(FIRMWARE.subarray(0, 1000));
              controller.close();
            },
          }),
          { headers: { "content-length": String(FIRMWARE.length) } },
        );
      case "/stall":
        // Headers never come; released when the test ends.
        return new Promise<Response>((resolve) => stalls.push(() => resolve(new Response("late"))));
      default:
        return new Response("not found", { status: 404 });
    }
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  return {
    url: (path: string) => `${base}${path}`,
    async close() {
      for (const release of stalls) release();
      await server.shutdown();
    },
  };
}

/** Options for starting the harness device. */
export interface HarnessOptions {
  logger?: Logger;
}

/** A provisioned device directory, a running device and a server link sharing a broker. */
export async function deviceHarness(brokerUrl: string) {
  const dir = await Deno.makeTempDir();
  const identity = await provisionDevice(join(dir, "device"));
  const deviceDir = join(dir, "device");
  const responses: ResponseMessage[] = [];
  const waiters = new Map<string, (message: ResponseMessage) => void>();
  let stored = 0n;
  const serverConnection: MqttConnection = await connectMqtt(brokerUrl, {
    clean: true,
    reconnectMinMs: 50,
    reconnectMaxMs: 200,
  });
  const link: ServerLink = await createServerLink(serverConnection, {
    privateKey: TEST_PRIVATE_KEY,
    // Unique per test: a shared broker must not route one test's responses to another.
    serverId: toHex(newToken()),
    sequence: createSequenceAllocator({
      load: () => Promise.resolve(stored),
      persist: (upTo) => Promise.resolve(void (stored = upTo)),
    }),
    deviceKey: (id) => Promise.resolve(id === identity.id ? identity.publicKey : undefined),
    onResponse(_id, message) {
      responses.push(message);
      const hex = toHex(message.token);
      const nth = responses.filter((r) => toHex(r.token) === hex).length;
      waiters.get(`${hex}/${nth}`)?.(message);
    },
  });

  /** Starts (or restarts) the device process in-process. */
  function start(options: HarnessOptions = {}): Promise<RunningDevice> {
    return startDevice({
      dir: deviceDir,
      serverKey: TEST_PUBLIC_KEY,
      broker: brokerUrl,
      serverId: link.serverId,
      limits: { maxBytes: MAX_BYTES, connectTimeoutMs: 300 },
      reconnectMinMs: 50,
      reconnectMaxMs: 200,
      logger: options.logger,
    });
  }

  /** The `nth` (1-based) RESPONSE carrying `token`, waiting for it. */
  function response(token: Uint8Array, nth = 1): Promise<ResponseMessage> {
    const hex = toHex(token);
    const seen = responses.filter((r) => toHex(r.token) === hex);
    if (seen.length >= nth) return Promise.resolve(seen[nth - 1]!);
    const { promise, resolve } = Promise.withResolvers<ResponseMessage>();
    waiters.set(`${hex}/${nth}`, resolve);
    return within(promise, `RESPONSE ${nth} for token ${hex}`);
  }

  return {
    dir: deviceDir,
    id: identity.id,
    publicKey: identity.publicKey,
    link,
    serverConnection,
    responses,
    start,
    response,
    async close() {
      await serverConnection.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
