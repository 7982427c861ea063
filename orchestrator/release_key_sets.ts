/** [SRUP-12] The release keys the server enforces: FLOTILLA_RELEASE_KEYS, moved along the key sets. */
import { followKeySets, type KeySet, PROVISIONED_KEY_SET_VERSION } from "../srup/mod.ts";
import { ConfigError, type ServiceConfig } from "./config.ts";

/**
 * The set the configured chain ends at; a ConfigError naming the first document that does not
 * follow (the server would otherwise send devices a chain they refuse).
 */
export async function releaseKeyChain(
  config: Pick<ServiceConfig, "releaseKeys" | "releaseKeySets">,
): Promise<KeySet> {
  const root = { version: PROVISIONED_KEY_SET_VERSION, keys: config.releaseKeys ?? [] };
  const chain = config.releaseKeySets ?? [];
  const followed = await followKeySets(root, chain);
  if (!followed.ok) {
    throw new ConfigError(
      `Invalid FLOTILLA_RELEASE_KEY_SETS: document ${
        followed.index + 1
      } does not follow the keys before it: ${followed.reason}`,
    );
  }
  return followed.set;
}
