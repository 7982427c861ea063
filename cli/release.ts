/** `flotilla srup release`: sign and verify release manifests ([SRUP-7]) with an offline key. */
import { createHash } from "node:crypto";
import {
  decodeManifest,
  defaultEd25519,
  equalBytes,
  ManifestError,
  MAX_SECURITY_VERSION,
  privateKeyFromPem,
  publicKeyFromPem,
  type ReleaseManifest,
  type SignedManifest,
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
       [--hardware ID]... [--expires ISO-8601] [--out FILE]
                     Write the manifest of FILE signed by the release key (PKCS#8 PEM) to
                     --out (default FILE.manifest); prints it as JSON
  verify --pub FILE --manifest FILE [--file FILE]
                     Check the manifest's signature by the release public key (SPKI PEM),
                     its expiry, and that FILE has its digest and size; prints it as JSON`;

/** Runs `srup release` with its arguments; returns the exit code. */
export function run(args: string[]): Promise<number> {
  return dispatch("srup release", HELP, { sign, verify }, args);
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
  });
  if (!values.pub) throw new UsageError("srup release verify needs --pub FILE");
  if (!values.manifest) throw new UsageError("srup release verify needs --manifest FILE");
  const publicKey = publicKeyFromPem(await readText(values.pub, "--pub"));
  let manifest: SignedManifest;
  try {
    manifest = decodeManifest(await readBytes(values.manifest, "--manifest"));
  } catch (error) {
    if (error instanceof ManifestError) throw new Error(`${error.message} (code "${error.code}")`);
    throw error;
  }
  if (!await verifyManifest(manifest, [publicKey])) {
    throw new Error(`Cannot verify manifest "${values.manifest}": not signed by that release key`);
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
