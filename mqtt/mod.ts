/**
 * @module
 * SRUP over MQTT: topics, connections (QoS 1, reconnect with backoff, bounded outbound queue),
 * the embedded aedes broker, and the orchestrator's link that signs what it sends and verifies
 * what it receives.
 */
export {
  DEFAULT_MQTT_PORT,
  type EmbeddedBroker,
  type EmbeddedBrokerOptions,
  PortInUseError,
  startEmbeddedBroker,
} from "./broker.ts";
export { selectBroker, type SelectBrokerOptions, type SelectedBroker } from "./select.ts";
export {
  ConnectionRefusedError,
  connectMqtt,
  type MessageHandler,
  MqttConnection,
  type MqttConnectOptions,
  OutboundQueueFullError,
  redact,
  type StatusHandler,
} from "./connection.ts";
export { mqttClientOptions, type MqttClientSettings, parseBrokerUrl } from "./options.ts";
export {
  deviceClientId,
  deviceOfClientId,
  deviceTopic,
  isServerId,
  parseResponseTopic,
  responseSubscription,
  type ResponseSubscriptionOptions,
  serverIdFromPublicKey,
  serverTopic,
  SHARE_GROUP,
  TOPIC_ROOT,
} from "./topics.ts";
export {
  type ActivateFields,
  createServerLink,
  type DeviceKeyHandler,
  type DeviceKeyVerdict,
  type InitiateFields,
  type KeyRotateFields,
  type ResponseHandler,
  type RollbackFields,
  type SendOptions,
  ServerLink,
  type ServerLinkOptions,
  WithheldSendError,
} from "./server_link.ts";
export { MemorySequenceTracker, type SequenceTracker } from "./sequence_tracker.ts";
export { RejectionCounter, type RejectReason } from "./rejections.ts";
export { RejectionLog, type RejectionLogOptions } from "./rejection_log.ts";
