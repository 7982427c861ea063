/** `flotilla device`: provision, run and inspect the SRUP device agent. */
import {
  DEFAULT_FETCH_LIMITS,
  deviceStatus,
  emptyState,
  fileKeyStore,
  loadIdentity,
  provisionDevice,
  readState,
  startDevice,
} from "../device/mod.ts";
import { isServerId, parseBrokerUrl } from "../mqtt/mod.ts";
import { jsonLogger } from "../obs/mod.ts";
import {
  defaultEd25519,
  fromBase64,
  fromHex,
  keyFingerprint,
  randomPrivateKey,
  toBase64,
} from "../srup/mod.ts";
import { lockDeviceDir } from "../device/dir_lock.ts";
import { dispatch, parse, printJson, UsageError } from "./args.ts";

export const HELP = `Usage: flotilla device <command>

Commands:
  provision --out DIR   Create the device id and Ed25519 key (DIR/device.key, mode 0600);
                        prints {"id","publicKey","frameVersion"}
  run --dir DIR --server-key BASE64 --broker URL [options]
                        Connect, obey INITIATE and ACTIVATE signed by the server key (or the key a
                        KEY_ROTATE made it trust since); one agent per directory (a second one
                        exits with an error)
  status --dir DIR      Print the id, public key and its fingerprint, current and previous
                        digests, any staged token, the running release's security version, the
                        server key trusted since a key rotation (null: the one run with), any
                        device key awaiting the server's acknowledgment and the release key set
                        version
  rotate-key --dir DIR  Propose a new device key ([SRUP-11]): writes DIR/device.key.next (0600);
                        the next "device run" sends it signed by the current key and switches
                        once the server acknowledges. Run it while the agent is stopped

Options of run:
  --server-id HEX       Server id in the response topic (default: first 16 hex characters
                        of SHA-256 over the server key)
  --release-key BASE64  A release public key (repeatable): install only what one signed, refuse
                        a lower security version ([SRUP-7])
  --hardware ID         This device's hardware id, matched against a manifest's hardware list
  --untrusted-clock     The clock cannot tell expiry: INITIATE not-after and release expiry are
                        not checked (they never are while the clock reads before 2025)
  --allow-http          Allow plain http downloads from any host (loopback is always allowed)
  --http-ca FILE        PEM CA certificate(s) trusted for https downloads, besides the system's
  --max-bytes N         Largest download in bytes (default ${DEFAULT_FETCH_LIMITS.maxBytes})
  --mqtt-ca FILE        PEM CA of the broker (mqtts://)
  --mqtt-cert FILE      PEM client certificate for the broker
  --mqtt-key FILE       PEM client key for the broker`;

/** Runs `device` with its arguments; returns the exit code. */
export function run(args: string[]): Promise<number> {
  return dispatch("device", HELP, {
    provision,
    run: runAgent,
    status,
    "rotate-key": rotateKey,
  }, args);
}

async function provision(args: string[]): Promise<number> {
  const { values } = parse(args, { out: { type: "string" } });
  if (!values.out) throw new UsageError("device provision needs --out DIR");
  const identity = await provisionDevice(values.out);
  // [SRUP-2.1] This agent takes INITIATE version 3: `ctl device import` registers it so.
  printJson({ id: identity.id, publicKey: toBase64(identity.publicKey), frameVersion: 3 });
  return 0;
}

async function status(args: string[]): Promise<number> {
  const { values } = parse(args, { dir: { type: "string" } });
  if (!values.dir) throw new UsageError("device status needs --dir DIR");
  const { id, publicKey } = await loadIdentity(values.dir);
  const state = await readState(values.dir) ?? emptyState();
  const { id: _, ...status } = deviceStatus(id, state);
  // [SRUP-7.4] The floor a new release must reach: 0 for a release installed without a manifest.
  const securityVersion = state.current?.securityVersion ?? 0;
  const next = await fileKeyStore(values.dir).loadNext();
  const nextKey = next && await (await defaultEd25519()).getPublicKey(next);
  printJson({
    id,
    publicKey: toBase64(publicKey),
    keyFingerprint: keyFingerprint(publicKey),
    ...status,
    securityVersion,
    // [SRUP-10] The server key trusted since a KEY_ROTATE; null: the one it was provisioned with.
    serverKey: state.serverKey === undefined ? null : toBase64(fromHex(state.serverKey)),
    // [SRUP-11.3] Proposed and not yet acknowledged: RESPONSEs are still signed by publicKey.
    nextKeyFingerprint: nextKey ? keyFingerprint(nextKey) : null,
    releaseKeySetVersion: state.releaseKeySet?.version ?? 1,
  });
  return 0;
}

async function rotateKey(args: string[]): Promise<number> {
  const { values } = parse(args, { dir: { type: "string" } });
  if (!values.dir) throw new UsageError("device rotate-key needs --dir DIR");
  const { id, publicKey } = await loadIdentity(values.dir);
  // The running agent holds the lock: it reads a proposal only when it starts.
  const lock = await lockDeviceDir(values.dir);
  try {
    const keys = fileKeyStore(values.dir);
    if (await keys.loadNext()) {
      throw new Error(
        `Cannot rotate key: a proposed key waits for the server in "${values.dir}/device.key.next"; run the agent to send it`,
      );
    }
    const seed = randomPrivateKey();
    await keys.saveNext(seed);
    const next = await (await defaultEd25519()).getPublicKey(seed);
    printJson({
      id,
      keyFingerprint: keyFingerprint(publicKey),
      nextPublicKey: toBase64(next),
      nextKeyFingerprint: keyFingerprint(next),
    });
  } finally {
    lock.release();
  }
  return 0;
}

async function runAgent(args: string[]): Promise<number> {
  const { values } = parse(args, {
    dir: { type: "string" },
    "server-key": { type: "string" },
    broker: { type: "string" },
    "server-id": { type: "string" },
    "allow-http": { type: "boolean" },
    "release-key": { type: "string", multiple: true },
    hardware: { type: "string" },
    "untrusted-clock": { type: "boolean" },
    "http-ca": { type: "string" },
    "max-bytes": { type: "string" },
    "mqtt-ca": { type: "string" },
    "mqtt-cert": { type: "string" },
    "mqtt-key": { type: "string" },
  });
  if (!values.dir) throw new UsageError("device run needs --dir DIR");
  if (!values["server-key"]) throw new UsageError("device run needs --server-key BASE64");
  if (!values.broker) throw new UsageError("device run needs --broker URL");
  const serverKey = parseServerKey(values["server-key"]);
  const releaseKeys = (values["release-key"] ?? []).map((text) => parseKey(text, "--release-key"));
  const serverId = values["server-id"]?.toLowerCase();
  if (serverId !== undefined && !isServerId(serverId)) {
    throw new UsageError(`Invalid --server-id "${values["server-id"]}": expected hex`);
  }
  try {
    parseBrokerUrl(values.broker);
  } catch (error) {
    throw new UsageError(`Invalid --broker: ${(error as Error).message}`);
  }
  if (Boolean(values["mqtt-cert"]) !== Boolean(values["mqtt-key"])) {
    throw new UsageError("--mqtt-cert and --mqtt-key go together");
  }
  const maxBytes = values["max-bytes"] === undefined
    ? undefined
    : parsePositive(values["max-bytes"], "--max-bytes");
  const httpFetch = values["http-ca"] ? await fetchWithCa(values["http-ca"]) : undefined;
  const logger = jsonLogger();
  const stop = new AbortController();
  const onSignal = () => stop.abort(new Error("Stopped by signal"));
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    // Fail on a bad directory before waiting for a broker.
    await loadIdentity(values.dir);
    const device = await startDevice({
      dir: values.dir,
      serverKey,
      broker: values.broker,
      serverId,
      allowHttp: values["allow-http"] ?? false,
      releaseKeys,
      hardware: values.hardware,
      trustClock: !values["untrusted-clock"],
      fetch: httpFetch,
      limits: maxBytes === undefined ? undefined : { maxBytes },
      caFile: values["mqtt-ca"],
      certFile: values["mqtt-cert"],
      keyFile: values["mqtt-key"],
      signal: stop.signal,
      logger,
    }).catch((error) => {
      if (stop.signal.aborted) return undefined;
      throw error;
    });
    if (!device) return 0;
    await new Promise((resolve) => stop.signal.addEventListener("abort", resolve));
    await device.close();
    logger.info("device.stopped", { device: device.agent.deviceId });
    return 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

function parseServerKey(text: string): Uint8Array {
  return parseKey(text, "--server-key");
}

function parseKey(text: string, option: string): Uint8Array {
  let key: Uint8Array | undefined;
  try {
    key = fromBase64(text);
  } catch {
    key = undefined;
  }
  if (key?.length !== 32) {
    throw new UsageError(`Invalid ${option} "${text}": expected base64 of 32 bytes`);
  }
  return key;
}

function parsePositive(text: string, name: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new UsageError(`Invalid ${name} "${text}": expected a positive integer`);
  }
  return value;
}

async function fetchWithCa(path: string): Promise<typeof fetch> {
  let pem: string;
  try {
    pem = await Deno.readTextFile(path);
  } catch (error) {
    throw new UsageError(`Cannot read --http-ca "${path}": ${(error as Error).message}`);
  }
  const client = Deno.createHttpClient({ caCerts: [pem] });
  return (input, init) => fetch(input, { ...init, client });
}
