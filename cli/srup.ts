/** `flotilla srup`: decode frames and make keys. */
import { join } from "node:path";
import {
  decodeMessage,
  defaultEd25519,
  keyFingerprint,
  privateKeyToPem,
  publicKeyToPem,
  randomPrivateKey,
  SrupDecodeError,
  type SrupMessage,
  statusName,
  toBase64,
  toHex,
} from "../srup/mod.ts";
import { exists, writeFileAtomic } from "../io/files.ts";
import { dispatch, parse, printJson, UsageError } from "./args.ts";
import { run as release } from "./release.ts";

export const HELP = `Usage: flotilla srup <command>

Commands:
  decode [HEX]       Print a frame as JSON (reads hex from stdin when HEX is omitted)
  keygen --out DIR [--force]
                     Write DIR/ed25519.key (PKCS#8, mode 0600) and DIR/ed25519.pub (SPKI);
                     refuses to replace an existing key unless --force
  release sign|verify|rotate
                     Sign a release manifest with an offline release key, check one, or sign
                     the key set that rotates release keys ("srup release help" for the options)`;

/** Runs `srup` with its arguments; returns the exit code. */
export function run(args: string[]): Promise<number> {
  return dispatch("srup", HELP, { decode, keygen, release }, args);
}

async function decode(args: string[]): Promise<number> {
  const { positionals } = parse(args, {}, true);
  if (positionals.length > 1) throw new UsageError("srup decode takes one hex frame");
  const text = positionals[0] ?? await new Response(Deno.stdin.readable).text();
  const hex = text.replace(/\s+/g, "").replace(/^0x/i, "");
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.fromHex(hex);
  } catch {
    console.error("Cannot decode frame: input is not hex");
    return 2;
  }
  try {
    printJson(messageToJson(decodeMessage(bytes)));
    return 0;
  } catch (error) {
    if (!(error instanceof SrupDecodeError)) throw error;
    console.error(`${error.message} (code "${error.code}", offset ${error.offset})`);
    return 2;
  }
}

/** A message as JSON, byte fields as hex. */
export function messageToJson(message: SrupMessage): Record<string, unknown> {
  const json: Record<string, unknown> = { type: message.type, version: message.version };
  if (message.sequence !== undefined) json.sequence = message.sequence.toString();
  json.signature = toHex(message.signature);
  if (message.type === "initiate") json.target = toHex(message.target);
  json.token = toHex(message.token);
  if (message.type === "initiate") {
    json.url = message.url;
    json.digest = toHex(message.digest);
    if (message.manifest) json.manifest = toHex(message.manifest);
    if (message.notAfter !== undefined) json.notAfter = message.notAfter.toString();
  }
  if (message.type === "response") {
    json.status = message.status;
    json.statusName = statusName(message.status);
  }
  if (message.type === "rollback") {
    json.target = toHex(message.target);
    json.digest = toHex(message.digest);
  }
  if (message.type === "key_rotate") {
    json.target = toHex(message.target);
    json.overlap = message.overlap.toString();
  }
  if (message.type === "device_key" || message.type === "key_rotate") {
    json.key = toHex(message.key);
    // Untrusted bytes: a key of the wrong length gets no fingerprint, and no exception.
    if (message.key.length === 32) json.keyFingerprint = keyFingerprint(message.key);
    json.proof = toHex(message.proof);
  }
  if (message.type === "release_keys") {
    json.target = toHex(message.target);
    json.keySet = toHex(message.keySet);
  }
  return json;
}

async function keygen(args: string[]): Promise<number> {
  const { values } = parse(args, { out: { type: "string" }, force: { type: "boolean" } });
  if (!values.out) throw new UsageError("srup keygen needs --out DIR");
  const keyPath = join(values.out, "ed25519.key");
  // A replaced private key cannot be had back: every device trusting it would need the new one.
  if (!values.force && await exists(keyPath)) {
    throw new Error(`Cannot write key: "${keyPath}" already exists (--force replaces it)`);
  }
  await Deno.mkdir(values.out, { recursive: true });
  const privateKey = randomPrivateKey();
  const publicKey = await (await defaultEd25519()).getPublicKey(privateKey);
  await writeFileAtomic(keyPath, privateKeyToPem(privateKey), { mode: 0o600 });
  await writeFileAtomic(join(values.out, "ed25519.pub"), publicKeyToPem(publicKey));
  printJson({ publicKey: toBase64(publicKey) });
  return 0;
}
