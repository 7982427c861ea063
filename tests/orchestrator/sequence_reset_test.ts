import assert from "node:assert/strict";
import { join } from "node:path";
import { connectMqtt, serverTopic } from "../../mqtt/mod.ts";
import { loadIdentity } from "../../device/mod.ts";
import { encodeMessage, type ResponseMessage, signMessage } from "../../srup/mod.ts";
import {
  api,
  startDevices,
  startTestService,
  type TestDevice,
  upload,
  waitForRollout,
} from "./_service.ts";
import type { Service } from "../../app/service.ts";

// Policy time runs 30 times faster: the 30 s response timeout below takes 1 s.
const SPEED = 30;
const MAX_U64 = (1n << 64n) - 1n;

/** One stage, a short response timeout and many retries: a locked-out device keeps being asked. */
const PATIENT = {
  name: "patient",
  stages: [{ percent: 100 }],
  retry: { attempts: 50, backoff: "1s", maxBackoff: "1s", on: ["timeout"] },
  timeouts: { response: "30s", activation: "30s" },
};

/** A RESPONSE signed with the device's own key, as a buggy device (or a clock jump) would send it. */
async function publishResponse(
  service: Service,
  device: TestDevice,
  fields: { sequence: bigint; token: Uint8Array; status: number },
): Promise<void> {
  const identity = await loadIdentity(device.dir);
  const frame = encodeMessage(
    await signMessage<ResponseMessage>({
      type: "response",
      version: 2,
      signature: new Uint8Array(),
      ...fields,
    }, identity.privateKey),
  );
  const client = await connectMqtt(service.mqttUrl, { clean: true });
  try {
    await client.publish(serverTopic(service.serverId, device.id), frame);
  } finally {
    await client.close();
  }
}

async function metric(service: Service, reason: string): Promise<number> {
  const text = await (await fetch(`${service.apiUrl}/metrics`)).text();
  const line = text.split("\n").find((l) =>
    l.startsWith(`flotilla_frames_rejected_total{reason="${reason}"} `)
  );
  return line === undefined ? 0 : Number(line.split(" ")[1]);
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${what}: not within ${ms} ms`);
}

async function call(
  service: Service,
  token: string,
  path: string,
  body?: unknown,
  raw?: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${service.apiUrl}${path}`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined && raw === undefined ? {} : { "content-type": "application/json" }),
    },
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  return { status: response.status, body: await response.json() };
}

Deno.test({
  name: "a device locked out by a huge sequence id is let back in by an audited floor reset",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir();
    const service = await startTestService(join(root, "data"), { speed: SPEED });
    let devices: TestDevice[] = [];
    try {
      devices = await startDevices(service, root, 1);
      const device = devices[0]!;
      const path = `/v1/devices/${device.id}/sequence-reset`;
      const viewer = await api(service, "POST", "/v1/tokens", { name: "eve", role: "viewer" });
      const operator = await api(service, "POST", "/v1/tokens", { name: "olga", role: "operator" });
      const viewerToken = viewer.body.token as string;
      const operatorToken = operator.body.token as string;
      const operatorId = operator.body.id as string;

      await t.step("a RESPONSE with a huge sequence id locks the device out", async () => {
        // Signed by the device, for a token never issued: accepted by the link, counted as ignored.
        await publishResponse(service, device, {
          sequence: MAX_U64 - 1n,
          token: new Uint8Array(16),
          status: 0x00,
        });
        const locked = await until("the huge sequence id stored", async () => {
          const { body } = await api(service, "GET", `/v1/devices/${device.id}`);
          return body.lastSequence === (MAX_U64 - 1n).toString() ? body : undefined;
        });
        assert.equal(locked.lastSequence, "18446744073709551614");
        assert.equal(await metric(service, "unknown_token"), 1);
      });

      let rolloutId = "";
      await t.step("the device's own RESPONSEs are then replays: the rollout stalls", async () => {
        const digest = await upload(service, crypto.getRandomValues(new Uint8Array(4096)));
        const created = await api(service, "POST", "/v1/rollouts", {
          artifact: { digest },
          policy: PATIENT,
          targets: { ids: [device.id] },
        });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        rolloutId = created.body.id as string;
        await until(
          "two RESPONSEs dropped as replays",
          async () => await metric(service, "replay") >= 2 ? true : undefined,
        );
        const stalled = await api(service, "GET", `/v1/rollouts/${rolloutId}`);
        assert.equal(stalled.body.state, "running");
        assert.equal((stalled.body.counts as Record<string, number>).activated, 0);
      });

      await t.step(
        "a signed 0xFF for a token never issued is counted, and halts nothing",
        async () => {
          await publishResponse(service, device, {
            sequence: MAX_U64,
            token: new Uint8Array(16).fill(0xff),
            status: 0xff,
          });
          await until(
            "the 0xFF counted as unknown_token",
            async () => await metric(service, "unknown_token") === 2 ? true : undefined,
          );
          const rollout = await api(service, "GET", `/v1/rollouts/${rolloutId}`);
          assert.equal(rollout.body.state, "running");
          assert.equal(rollout.body.haltReason, null);
          const shown = await api(service, "GET", `/v1/devices/${device.id}`);
          assert.equal(shown.body.lastSequence, MAX_U64.toString());
        },
      );

      await t.step(
        "viewers may not reset, and bad floors are refused naming the field",
        async () => {
          const denied = await call(service, viewerToken, path, {});
          assert.equal(denied.status, 403, JSON.stringify(denied.body));
          for (
            const [body, raw] of [
              [{ floor: "abc" }],
              [{ floor: "-1" }],
              [{ floor: "18446744073709551616" }],
              [{ floor: "99999999999999999999999" }],
              [{ floor: 5 }],
              [{ floor: "1.5" }],
              [{ floor: "" }],
              [{ ceiling: "1" }],
              [undefined, "{"],
            ] as [unknown, string?][]
          ) {
            const reply = await call(service, operatorToken, path, body, raw);
            const error = reply.body.error as { code: string; message: string };
            assert.equal(
              reply.status,
              400,
              `${JSON.stringify(body)}: ${JSON.stringify(reply.body)}`,
            );
            if (raw !== undefined) continue;
            assert.equal(error.code, "invalid_request");
            const field = "ceiling" in (body as object) ? /"ceiling"/ : /"floor"/;
            assert.match(error.message, field, JSON.stringify(body));
          }
          const missing = await call(
            service,
            operatorToken,
            `/v1/devices/${crypto.randomUUID()}/sequence-reset`,
            {},
          );
          assert.equal(missing.status, 404);
          // A body of another type is refused, never read as an empty one (clearing the floor).
          for (const type of ["text/plain", "application/x-www-form-urlencoded"]) {
            const response = await fetch(`${service.apiUrl}${path}`, {
              method: "POST",
              headers: { authorization: `Bearer ${operatorToken}`, "content-type": type },
              body: '{"floor":"1000"}',
            });
            const reply = await response.json();
            assert.equal(response.status, 415, JSON.stringify(reply));
            assert.equal(reply.error.code, "unsupported_media_type");
          }
          const spec = await (await fetch(`${service.apiUrl}/openapi.json`)).json();
          const route = spec.paths["/v1/devices/{id}/sequence-reset"].post;
          assert.equal(route.operationId, "resetDeviceSequence");
          assert.deepEqual(route.tags, ["devices"]);
          // Every status this route's own code answers (the service may add its own around it).
          for (const status of ["200", "400", "401", "403", "404", "413", "415"]) {
            assert.ok(status in route.responses, `${status} documented`);
          }
          for (const status of ["400", "401", "403", "404", "413", "415"]) {
            assert.equal(
              route.responses[status].content["application/json"].schema.$ref,
              "#/components/schemas/Error",
            );
          }
          assert.equal(route.requestBody.required, false);
          // The document's pattern for floor is exactly the u64 range: a fuzzer keeping to it is
          // never refused.
          const floor = spec.components.schemas.SequenceReset.properties.floor;
          const pattern = new RegExp(floor.pattern);
          const samples = [
            "0",
            "9",
            MAX_U64.toString(),
            (MAX_U64 - 1n).toString(),
            "1" + "0".repeat(19),
          ];
          for (let i = 0; i < 5000; i++) {
            const digits = 1 + Math.floor(Math.random() * 20);
            let text = String(1 + Math.floor(Math.random() * 9));
            while (text.length < digits) text += String(Math.floor(Math.random() * 10));
            samples.push(text);
          }
          for (const text of [...samples, (MAX_U64 + 1n).toString(), "99999999999999999999"]) {
            assert.equal(pattern.test(text), BigInt(text) <= MAX_U64, text);
          }
          const unchanged = await api(service, "GET", `/v1/devices/${device.id}`);
          assert.equal(unchanged.body.lastSequence, MAX_U64.toString());
        },
      );

      await t.step(
        "an operator's reset lets the next RESPONSE in: the rollout completes",
        async () => {
          const stream = await fetch(`${service.apiUrl}/v1/events?device=${device.id}`, {
            headers: { authorization: `Bearer ${operatorToken}` },
          });
          const reset = await call(service, operatorToken, path);
          assert.equal(reset.status, 200, JSON.stringify(reset.body));
          assert.deepEqual(reset.body, {
            id: device.id,
            previous: MAX_U64.toString(),
            lastSequence: null,
          });
          const done = await waitForRollout(service, rolloutId, (r) => r.state === "completed");
          assert.equal((done.counts as Record<string, number>).activated, 1);
          const after = await api(service, "GET", `/v1/devices/${device.id}`);
          assert.match(after.body.lastSequence as string, /^\d{1,15}$/);

          const events = await api<{ items: Record<string, unknown>[] }>(
            service,
            "GET",
            `/v1/devices/${device.id}/events`,
          );
          const logged = events.body.items.filter((e) => e.type === "device.sequence_reset");
          assert.equal(logged.length, 1);
          assert.equal(logged[0]!.actor, "olga");
          assert.deepEqual(logged[0]!.data, {
            tokenId: operatorId,
            previous: MAX_U64.toString(),
            floor: null,
          });

          const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
          let seen = "";
          while (!seen.includes("event: device.sequence_reset")) {
            const { value, done } = await reader.read();
            assert.ok(!done, "the stream ended before the reset event");
            seen += value;
          }
          await reader.cancel();
          assert.match(seen, /"previous":"18446744073709551615"/);
          assert.match(seen, /"actor":"olga"/);
        },
      );

      await t.step("a floor given as a decimal string is kept exactly", async () => {
        // An id in capitals names the same device.
        const upper = `/v1/devices/${device.id.toUpperCase()}/sequence-reset`;
        const reset = await call(service, operatorToken, upper, { floor: "18446744073709551614" });
        assert.equal(reset.status, 200, JSON.stringify(reset.body));
        assert.equal(reset.body.id, device.id);
        assert.equal(reset.body.lastSequence, "18446744073709551614");
        const shown = await api(service, "GET", `/v1/devices/${device.id}`);
        assert.equal(shown.body.lastSequence, "18446744073709551614");
        const cleared = await call(service, operatorToken, path, { floor: null });
        assert.equal(cleared.body.previous, "18446744073709551614");
        assert.equal(cleared.body.lastSequence, null);
      });
    } finally {
      await Promise.all(devices.map((d) => d.running.close()));
      await service.close();
    }
  },
});
