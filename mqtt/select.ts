/** Which broker flotilla talks to: the one MQTT_URL names, or the embedded one. */
import { type EmbeddedBroker, type EmbeddedBrokerOptions, startEmbeddedBroker } from "./broker.ts";
import { parseBrokerUrl } from "./options.ts";

/** Options for {@linkcode selectBroker}. */
export interface SelectBrokerOptions extends EmbeddedBrokerOptions {
  /** An external broker (`MQTT_URL`); when unset, the embedded broker is started. */
  url?: string;
}

/** The broker in use. */
export interface SelectedBroker {
  url: string;
  /** Set when flotilla started the broker itself. */
  embedded?: EmbeddedBroker;
  /** Stops the embedded broker; nothing for an external one. */
  close(): Promise<void>;
}

/** Returns the external broker when `url` is set, else starts the embedded one (port 1883 by default). */
export async function selectBroker(options: SelectBrokerOptions = {}): Promise<SelectedBroker> {
  if (options.url) {
    parseBrokerUrl(options.url);
    return { url: options.url, close: () => Promise.resolve() };
  }
  const embedded = await startEmbeddedBroker(options);
  return { url: embedded.url, embedded, close: () => embedded.close() };
}
