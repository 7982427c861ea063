/** What a device checks of an INITIATE before it fetches anything: release, freshness, version. */
import {
  decodeManifest,
  equalBytes,
  type InitiateMessage,
  ManifestError,
  type SignedManifest,
  UPDATE_REFUSED_EXPIRED,
  UPDATE_REFUSED_HARDWARE,
  UPDATE_REFUSED_ROLLBACK,
  UPDATE_REFUSED_UNSIGNED,
  verifyManifest,
} from "../srup/mod.ts";

/**
 * [SRUP-8] A clock reading before this (2025-01-01) is a clock never set (no RTC, no NTP yet): it
 * cannot tell that anything expired, so freshness and expiry are not checked on it.
 */
export const CLOCK_FLOOR_MS = Date.UTC(2025, 0, 1);

/** What the device trusts and is. */
export interface ReleasePolicy {
  /** Release public keys; when any is given, only what one of them signed is installed. */
  releaseKeys: readonly Uint8Array[];
  /** This device's hardware id, matched against a manifest's hardware list. */
  hardware?: string;
  /** False for a device whose clock cannot be trusted: expiry is then never checked. */
  trustClock: boolean;
  /** Unix milliseconds now. */
  now: number;
  /** Security version of the release the device runs (0 when it has none). */
  runningSecurityVersion: number;
}

/** The outcome of {@linkcode checkRelease}. */
export type ReleaseCheck =
  | { ok: true; manifest?: SignedManifest }
  | { ok: false; status: number; reason: string };

/** The refusal status for an INITIATE, or ok with its manifest (none in versions 1 and 2). */
export async function checkRelease(
  message: InitiateMessage,
  policy: ReleasePolicy,
): Promise<ReleaseCheck> {
  const clockTrusted = policy.trustClock && policy.now >= CLOCK_FLOOR_MS;
  // [SRUP-8] A frame acted on after its not-after time could be one held back by an attacker.
  if (message.notAfter !== undefined && clockTrusted && BigInt(policy.now) > message.notAfter) {
    return refuse(UPDATE_REFUSED_EXPIRED, "initiate_expired");
  }
  if (message.manifest === undefined) {
    // [SRUP-7.3] A device that holds release keys installs nothing a release key did not sign.
    if (policy.releaseKeys.length > 0) return refuse(UPDATE_REFUSED_UNSIGNED, "no_manifest");
    return { ok: true };
  }
  let manifest: SignedManifest;
  try {
    manifest = decodeManifest(message.manifest);
  } catch (error) {
    if (!(error instanceof ManifestError)) throw error;
    return refuse(UPDATE_REFUSED_UNSIGNED, `bad_manifest: ${error.code}`);
  }
  if (policy.releaseKeys.length > 0 && !await verifyManifest(manifest, policy.releaseKeys)) {
    return refuse(UPDATE_REFUSED_UNSIGNED, "bad_release_signature");
  }
  // The signed digest is the one fetched against: a server cannot pair a manifest with any file.
  if (!equalBytes(manifest.digest, message.digest)) {
    return refuse(UPDATE_REFUSED_UNSIGNED, "manifest_digest_mismatch");
  }
  if (manifest.expiresAt !== undefined && clockTrusted && policy.now >= manifest.expiresAt) {
    return refuse(UPDATE_REFUSED_UNSIGNED, "release_expired");
  }
  if (
    manifest.hardware.length > 0 &&
    (policy.hardware === undefined || !manifest.hardware.includes(policy.hardware))
  ) {
    return refuse(UPDATE_REFUSED_HARDWARE, "hardware_incompatible");
  }
  // [SRUP-7.4] Anti-rollback: an equal security version is allowed, a lower one only by a signed
  // rollback release whose range holds the running one ([SRUP-7.6]).
  const running = policy.runningSecurityVersion;
  const range = manifest.rollbackRange;
  const allowed = range !== undefined && running >= range.from && running <= range.to;
  if (manifest.securityVersion < running && !allowed) {
    return refuse(UPDATE_REFUSED_ROLLBACK, "security_version_downgrade");
  }
  return { ok: true, manifest };
}

function refuse(status: number, reason: string): ReleaseCheck {
  return { ok: false, status, reason };
}
