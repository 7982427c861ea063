/** SRUP topics, as in the SRUP reference implementation. */
import { abytes, isUuid } from "../srup/mod.ts";

/** Topic prefix of every SRUP message. */
export const TOPIC_ROOT = "SRUP";
/** Shared-subscription group of the orchestrator instances (MQTT 5). */
export const SHARE_GROUP = "flotilla";

const SERVER_ID_PATTERN = /^[0-9a-f]{1,64}$/;

/** Whether `text` can be a server id: lowercase hex, so it is a valid single topic level. */
export function isServerId(text: string): boolean {
  return SERVER_ID_PATTERN.test(text);
}

const DEVICE_CLIENT_PREFIX = "flotilla-device-";

/** The MQTT client id a device agent connects with, stable so the broker keeps its session. */
export function deviceClientId(deviceId: string): string {
  return `${DEVICE_CLIENT_PREFIX}${checkUuid(deviceId)}`;
}

/** The device id in a device agent's client id, or undefined for any other client. */
export function deviceOfClientId(clientId: string): string | undefined {
  if (!clientId.startsWith(DEVICE_CLIENT_PREFIX)) return undefined;
  const id = clientId.slice(DEVICE_CLIENT_PREFIX.length);
  return isUuid(id) ? id.toLowerCase() : undefined;
}

/** Server to device: `SRUP/<device-uuid>`. */
export function deviceTopic(deviceId: string): string {
  return `${TOPIC_ROOT}/${checkUuid(deviceId)}`;
}

/** Device to server: `SRUP/servers/<server-id>/<device-uuid>`. */
export function serverTopic(serverId: string, deviceId: string): string {
  return `${TOPIC_ROOT}/servers/${checkServerId(serverId)}/${checkUuid(deviceId)}`;
}

/** Options for {@linkcode responseSubscription}. */
export interface ResponseSubscriptionOptions {
  /** Use the MQTT 5 shared subscription, so several orchestrators split the responses. */
  shared?: boolean;
}

/** The filter the orchestrator subscribes to: every device's responses to `serverId`. */
export function responseSubscription(
  serverId: string,
  options: ResponseSubscriptionOptions = {},
): string {
  const filter = `${TOPIC_ROOT}/servers/${checkServerId(serverId)}/+`;
  return options.shared ? `$share/${SHARE_GROUP}/${filter}` : filter;
}

/** The device id in a response topic for `serverId`, or undefined for any other topic. */
export function parseResponseTopic(topic: string, serverId: string): string | undefined {
  const prefix = `${TOPIC_ROOT}/servers/${serverId}/`;
  if (!topic.startsWith(prefix)) return undefined;
  const deviceId = topic.slice(prefix.length);
  // Only the canonical lowercase form, so one device never appears under two ids.
  return isUuid(deviceId) && deviceId === deviceId.toLowerCase() ? deviceId : undefined;
}

/** The default server id: the first 16 hex characters of SHA-256 over the raw public key. */
export async function serverIdFromPublicKey(publicKey: Uint8Array): Promise<string> {
  abytes(publicKey, 32, "public key");
  const digest = await crypto.subtle.digest("SHA-256", publicKey as Uint8Array<ArrayBuffer>);
  return new Uint8Array(digest).toHex().slice(0, 16);
}

function checkUuid(deviceId: string): string {
  if (!isUuid(deviceId)) throw new TypeError(`Invalid device id: "${deviceId}" is not a UUID`);
  return deviceId.toLowerCase();
}

function checkServerId(serverId: string): string {
  if (!isServerId(serverId)) {
    throw new TypeError(`Invalid server id: "${serverId}" is not 1 to 64 lowercase hex characters`);
  }
  return serverId;
}
