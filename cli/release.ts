/** `flotilla srup release`: sign and verify release manifests ([SRUP-7]) with an offline key. */
import { createHash } from "node:crypto";
import {
  decodeKeySet,
  decodeManifest,
  defaultEd25519,
  equalBytes,
  followKeySets,
  keyFingerprint,
  KeySetError,
  ManifestError,
  MAX_SECURITY_VERSION,
  privateKeyFromPem,
  PROVISIONED_KEY_SET_VERSION,
  publicKeyFromPem,
  type ReleaseManifest,
  type SignedManifest,
  signKeySet,
  signManifest,
  toBase64,
  toHex,
  verifyManifest,
} from "../srup/mod.ts";
import { writeFileAtomic } from "../io/files.ts";
import { manifestToJson } from "../http/artifact_manifest.ts";
import { dispatch, parse, printJson, UsageError } from "./args.ts";

export const HELP = `Usage: flotilla srup release <command>

Commands:
  sign --key FILE --file FILE --name NAME --version VERSION --security-version N
       [--hardware ID]... [--expires ISO-8601] [--rollback-range FROM-TO] [--out FILE]
                     Write the manifest of FILE signed by the release key (PKCS#8 PEM) to
                     --out (default FILE.manifest); prints it as JSON. --rollback-range makes it
                     a signed rollback release: devices running a security version from FROM
                     to TO install it though its own is lower ([SRUP-7.6])
  verify --pub FILE --manifest FILE [--file FILE]
                     Check the manifest's signature by the release public key (SPKI PEM),
                     its expiry, and that FILE has its digest and size; prints it as JSON.
                     With --chain FILE (repeatable, in order), --pub is the provisioned key and
                     the manifest may be signed by any key the chain ends at ([SRUP-12])
  rotate --key FILE [--key FILE]... --new-key FILE [--new-key FILE]... [--keep FILE]...
         [--previous FILE] [--out FILE]
                     Write the release key set that follows the current one ([SRUP-12]): its keys
                     are the --new-key keys (private, PKCS#8 PEM: each signs, proving it is held)
                     and the --keep keys (public, SPKI PEM); every other key is revoked. Signed by
                     the current keys (--key, private). --previous is the key set this follows
                     (without it, the provisioned keys: version 2). Writes --out (default
                     release-keys-vN.keyset); prints it as JSON`;

/** Runs `srup release` with its arguments; returns the exit code. */
export function run(args: string[]): Promise<number> {
  return dispatch("srup release", HELP, { sign, verify, rotate }, args);
}

async function sign(args: string[]): Promise<number> {
  const { values } = parse(args, {
    key: { type: "string" },
    file: { type: "string" },
    name: { type: "string" },
    version: { type: "string" },
    "security-version": { type: "string" },
    hardware: { type: "string", multiple: true },
    expires: { type: "string" },
    "rollback-range": { type: "string" },
    out: { type: "string" },
  });
  for (const name of ["key", "file", "name", "version", "security-version"] as const) {
    if (!values[name]) throw new UsageError(`srup release sign needs --${name}`);
  }
  const securityVersion = Number(values["security-version"]);
  if (
    !/^\d+$/.test(values["security-version"]!) || !Number.isSafeInteger(securityVersion) ||
    securityVersion > MAX_SECURITY_VERSION
  ) {
    throw new UsageError(
      `Invalid --security-version "${
        values["security-version"]
      }": expected an integer from 0 to ${MAX_SECURITY_VERSION}`,
    );
  }
  const expiresAt = values.expires === undefined ? undefined : parseExpiry(values.expires);
  const rollbackRange = values["rollback-range"] === undefined
    ? undefined
    : parseRange(values["rollback-range"]);
  const privateKey = privateKeyFromPem(await readText(values.key!, "--key"));
  const { digest, size } = await hashFile(values.file!);
  const manifest: ReleaseManifest = {
    digest,
    size,
    name: values.name!,
    version: values.version!,
    securityVersion,
    hardware: values.hardware ?? [],
    expiresAt,
    rollbackRange,
  };
  let bytes: Uint8Array;
  try {
    bytes = await signManifest(manifest, privateKey);
  } catch (error) {
    if (error instanceof RangeError) throw new UsageError(error.message);
    throw error;
  }
  const out = values.out ?? `${values.file}.manifest`;
  await writeFileAtomic(out, bytes);
  const publicKey = await (await defaultEd25519()).getPublicKey(privateKey);
  printJson({ ...manifestToJson(decodeManifest(bytes)), releaseKey: toBase64(publicKey), out });
  return 0;
}

async function verify(args: string[]): Promise<number> {
  const { values } = parse(args, {
    pub: { type: "string" },
    manifest: { type: "string" },
    file: { type: "string" },
    chain: { type: "string", multiple: true },
  });
  if (!values.pub) throw new UsageError("srup release verify needs --pub FILE");
  if (!values.manifest) throw new UsageError("srup release verify needs --manifest FILE");
  const publicKey = publicKeyFromPem(await readText(values.pub, "--pub"));
  const chain = await Promise.all((values.chain ?? []).map((path) => readBytes(path, "--chain")));
  const followed = await followKeySets(
    { version: PROVISIONED_KEY_SET_VERSION, keys: [publicKey] },
    chain,
  );
  if (!followed.ok) {
    throw new Error(
      `Cannot verify key set "${values.chain![followed.index]}": ${followed.reason}`,
    );
  }
  let manifest: SignedManifest;
  try {
    manifest = decodeManifest(await readBytes(values.manifest, "--manifest"));
  } catch (error) {
    if (error instanceof ManifestError) throw new Error(`${error.message} (code "${error.code}")`);
    throw error;
  }
  if (!await verifyManifest(manifest, followed.set.keys)) {
    throw new Error(
      `Cannot verify manifest "${values.manifest}": not signed by ${
        chain.length > 0 ? `a key of release key set ${followed.set.version}` : "that release key"
      }`,
    );
  }
  if (manifest.expiresAt !== undefined && manifest.expiresAt <= Date.now()) {
    throw new Error(
      `Cannot verify manifest "${values.manifest}": expired at ${
        new Date(manifest.expiresAt).toISOString()
      }`,
    );
  }
  if (values.file !== undefined) {
    const { digest, size } = await hashFile(values.file);
    if (size !== manifest.size || !equalBytes(digest, manifest.digest)) {
      throw new Error(
        `Cannot verify manifest "${values.manifest}": "${values.file}" (${size} bytes, ${
          toHex(digest)
        }) is not the signed file (${manifest.size} bytes, ${toHex(manifest.digest)})`,
      );
    }
  }
  printJson({ ...manifestToJson(manifest), verified: true });
  return 0;
}

async function rotate(args: string[]): Promise<number> {
  const { values } = parse(args, {
    key: { type: "string", multiple: true },
    "new-key": { type: "string", multiple: true },
    keep: { type: "string", multiple: true },
    previous: { type: "string" },
    out: { type: "string" },
  });
  if (!values.key?.length) throw new UsageError("srup release rotate needs --key FILE");
  if (!values["new-key"]?.length && !values.keep?.length) {
    throw new UsageError("srup release rotate needs --new-key FILE or --keep FILE");
  }
  const ed25519 = await defaultEd25519();
  const current = await Promise.all(
    values.key.map(async (path) => privateKeyFromPem(await readText(path, "--key"))),
  );
  const added = await Promise.all(
    (values["new-key"] ?? []).map(async (path) =>
      privateKeyFromPem(await readText(path, "--new-key"))
    ),
  );
  const kept = await Promise.all(
    (values.keep ?? []).map(async (path) => publicKeyFromPem(await readText(path, "--keep"))),
  );
  let version = PROVISIONED_KEY_SET_VERSION + 1;
  if (values.previous !== undefined) {
    try {
      version = decodeKeySet(await readBytes(values.previous, "--previous")).version + 1;
    } catch (error) {
      if (error instanceof KeySetError) {
        throw new Error(`Cannot read --previous "${values.previous}": ${error.message}`);
      }
      throw error;
    }
  }
  const keys = [...kept, ...await Promise.all(added.map((seed) => ed25519.getPublicKey(seed)))];
  let bytes: Uint8Array;
  try {
    // [SRUP-12.2] The current keys authorise it; each new key's signature proves it is held.
    bytes = await signKeySet({ version, keys }, [...current, ...added]);
  } catch (error) {
    if (error instanceof RangeError) throw new UsageError(error.message);
    throw error;
  }
  const out = values.out ?? `release-keys-v${version}.keyset`;
  await writeFileAtomic(out, bytes);
  const document = decodeKeySet(bytes);
  printJson({
    version,
    keys: document.keys.map((key) => ({ key: toBase64(key), fingerprint: keyFingerprint(key) })),
    signedBy: document.signatures.map((s) => keyFingerprint(s.key)),
    out,
  });
  return 0;
}

function parseRange(text: string): { from: number; to: number } {
  const match = /^(\d{1,10})-(\d{1,10})$/.exec(text);
  const from = Number(match?.[1]);
  const to = Number(match?.[2]);
  if (!match || from > MAX_SECURITY_VERSION || to > MAX_SECURITY_VERSION || from > to) {
    throw new UsageError(
      `Invalid --rollback-range "${text}": expected FROM-TO, two security versions, low to high`,
    );
  }
  return { from, to };
}

function parseExpiry(text: string): number {
  const ms = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(ms) || ms <= 0) {
    throw new UsageError(`Invalid --expires "${text}": expected an ISO 8601 date or time`);
  }
  // The manifest keeps whole seconds; rounding down never extends a release's life.
  return Math.floor(ms / 1000) * 1000;
}

async function hashFile(path: string): Promise<{ digest: Uint8Array; size: number }> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (error) {
    throw new Error(`Cannot read file "${path}": ${(error as Error).message}`);
  }
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of file.readable) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { digest: new Uint8Array(hash.digest()), size };
}

async function readText(path: string, option: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new Error(`Cannot read ${option} "${path}": ${(error as Error).message}`);
  }
}

async function readBytes(path: string, option: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    throw new Error(`Cannot read ${option} "${path}": ${(error as Error).message}`);
  }
}
