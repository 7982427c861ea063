import assert from "node:assert/strict";
import { join, resolve } from "node:path";
import { ConfigError, readConfig } from "../../orchestrator/config.ts";

const CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY-----\n";

Deno.test("readConfig() fills in the defaults of deno task start", () => {
  const config = readConfig({});
  assert.equal(config.dataDir, resolve("./data"));
  assert.equal(config.policyDir, resolve("./policies"));
  assert.equal(config.host, "127.0.0.1");
  assert.equal(config.port, 8080);
  assert.equal(config.mqttPort, 1883);
  assert.equal(config.logMqtt, false);
  assert.equal(config.artifactStore, "dir");
  assert.equal(config.artifactDir, join(resolve("./data"), "artifacts"));
  assert.equal(config.mqttProtocolVersion, undefined);
  assert.equal(readConfig({ FLOTILLA_MQTT_PROTOCOL_VERSION: "4" }).mqttProtocolVersion, 4);
});

Deno.test("readConfig() keeps artifacts in PostgreSQL by default there, in a directory if named", () => {
  const pg = { DATABASE_URL: "postgres://flotilla@db/flotilla" };
  assert.equal(readConfig(pg).artifactStore, "db");
  assert.equal(readConfig({ ...pg, FLOTILLA_ARTIFACT_STORE: "dir" }).artifactStore, "dir");
  const shared = { ...pg, FLOTILLA_ARTIFACT_DIR: "/srv/flotilla-artifacts" };
  assert.equal(readConfig(shared).artifactStore, "dir");
  assert.equal(readConfig(shared).artifactDir, "/srv/flotilla-artifacts");
  assert.equal(readConfig({ ...shared, FLOTILLA_ARTIFACT_STORE: "db" }).artifactStore, "db");
  assert.equal(readConfig({ FLOTILLA_ARTIFACT_STORE: "dir" }).artifactStore, "dir");
});

Deno.test("readConfig() accepts addresses, URLs and files that are good", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "cert.pem"), CERT);
    await Deno.writeTextFile(join(dir, "key.pem"), KEY);
    for (
      const host of ["0.0.0.0", "::", "::1", "localhost", "flotilla.example.com", "10.0.0.255"]
    ) {
      assert.equal(readConfig({ FLOTILLA_HOST: host }).host, host);
    }
    const config = readConfig({
      FLOTILLA_POLICY_DIR: dir,
      FLOTILLA_TLS_CERT: join(dir, "cert.pem"),
      FLOTILLA_TLS_KEY: join(dir, "key.pem"),
      MQTT_URL: "mqtts://broker.example.com:8883",
      FLOTILLA_MQTT_CA: join(dir, "cert.pem"),
      FLOTILLA_PUBLIC_URL: "https://updates.example.com/",
      DATABASE_URL: "postgresql://flotilla@db/flotilla",
      FLOTILLA_LOG_MQTT: "1",
    });
    assert.equal(config.policyDir, dir);
    assert.equal(config.publicUrl, "https://updates.example.com");
    assert.equal(config.logMqtt, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readConfig() names the variable and its value for every bad setting", async () => {
  const dir = await Deno.makeTempDir();
  const file = join(dir, "file.txt");
  const missing = join(dir, "missing");
  await Deno.writeTextFile(file, "not pem\n");
  await Deno.writeTextFile(join(dir, "key.pem"), KEY);
  const cases: [Record<string, string>, string | RegExp][] = [
    [
      { FLOTILLA_HOST: "999.1.1.1" },
      'Invalid FLOTILLA_HOST: "999.1.1.1" is not an IP address or host name',
    ],
    [
      { FLOTILLA_HOST: "1.2.3" },
      'Invalid FLOTILLA_HOST: "1.2.3" is not an IP address or host name',
    ],
    [
      { FLOTILLA_HOST: "bad host" },
      'Invalid FLOTILLA_HOST: "bad host" is not an IP address or host name',
    ],
    [{ FLOTILLA_HOST: "::zz" }, 'Invalid FLOTILLA_HOST: "::zz" is not an IP address or host name'],
    [
      { FLOTILLA_POLICY_DIR: missing },
      new RegExp(`^Invalid FLOTILLA_POLICY_DIR: "${missing}" cannot be read: No such file`),
    ],
    [{ FLOTILLA_POLICY_DIR: file }, `Invalid FLOTILLA_POLICY_DIR: "${file}" is not a directory`],
    [{ FLOTILLA_DATA_DIR: file }, `Invalid FLOTILLA_DATA_DIR: "${file}" is not a directory`],
    [
      { FLOTILLA_TLS_CERT: file, FLOTILLA_TLS_KEY: join(dir, "key.pem") },
      `Invalid FLOTILLA_TLS_CERT: "${file}" holds no PEM certificate`,
    ],
    [
      { FLOTILLA_TLS_CERT: missing, FLOTILLA_TLS_KEY: join(dir, "key.pem") },
      new RegExp(`^Invalid FLOTILLA_TLS_CERT: "${missing}" cannot be read: No such file`),
    ],
    [
      { FLOTILLA_TLS_CERT: join(dir, "key.pem"), FLOTILLA_TLS_KEY: join(dir, "key.pem") },
      `Invalid FLOTILLA_TLS_CERT: "${join(dir, "key.pem")}" holds no PEM certificate`,
    ],
    [{ FLOTILLA_TLS_KEY: file }, `Invalid FLOTILLA_TLS_KEY: "${file}" holds no PEM private key`],
    [
      { FLOTILLA_TLS_KEY: join(dir, "key.pem") },
      "Invalid TLS settings: set both FLOTILLA_TLS_CERT and FLOTILLA_TLS_KEY, or neither",
    ],
    [
      { FLOTILLA_SERVER_KEY: file },
      `Invalid FLOTILLA_SERVER_KEY: "${file}" holds no PEM private key`,
    ],
    [{ FLOTILLA_MQTT_CA: file }, `Invalid FLOTILLA_MQTT_CA: "${file}" holds no PEM certificate`],
    [
      { FLOTILLA_MQTT_KEY: join(dir, "key.pem") },
      "Invalid MQTT TLS settings: set both FLOTILLA_MQTT_CERT and FLOTILLA_MQTT_KEY, or neither",
    ],
    [{ PORT: "80a" }, 'Invalid PORT: "80a" is not a port number (0 to 65535)'],
    [{ PORT: "70000" }, 'Invalid PORT: "70000" is not a port number (0 to 65535)'],
    [
      { FLOTILLA_MQTT_PORT: "-1" },
      'Invalid FLOTILLA_MQTT_PORT: "-1" is not a port number (0 to 65535)',
    ],
    [{ MQTT_URL: "http://x" }, 'Invalid MQTT_URL: "http://x" is not an mqtt:// or mqtts:// URL'],
    [
      { DATABASE_URL: "mysql://x" },
      'Invalid DATABASE_URL: "mysql://x" is not a postgres:// or postgresql:// URL',
    ],
    [
      { FLOTILLA_PUBLIC_URL: "updates.example.com" },
      'Invalid FLOTILLA_PUBLIC_URL: "updates.example.com" is not an http:// or https:// URL',
    ],
    [
      { FLOTILLA_ADMIN_TOKEN: "short" },
      "Invalid FLOTILLA_ADMIN_TOKEN: it must be at least 16 characters",
    ],
    [
      { FLOTILLA_ADMIN_TOKEN: "t".repeat(513) },
      "Invalid FLOTILLA_ADMIN_TOKEN: it must be at most 512 characters",
    ],
    [
      { FLOTILLA_MAX_ARTIFACT_BYTES: "1e9" },
      'Invalid FLOTILLA_MAX_ARTIFACT_BYTES: "1e9" is not a positive number of bytes',
    ],
    [
      { FLOTILLA_MAX_JSON_BYTES: "0" },
      'Invalid FLOTILLA_MAX_JSON_BYTES: "0" is not a positive number of bytes',
    ],
    [
      { FLOTILLA_UPLOAD_IDLE_TIMEOUT_MS: "30s" },
      'Invalid FLOTILLA_UPLOAD_IDLE_TIMEOUT_MS: "30s" is not a number of milliseconds (1 to 2147483647)',
    ],
    [
      { FLOTILLA_UPLOAD_IDLE_TIMEOUT_MS: "0" },
      'Invalid FLOTILLA_UPLOAD_IDLE_TIMEOUT_MS: "0" is not a number of milliseconds (1 to 2147483647)',
    ],
    [
      { FLOTILLA_UPLOAD_IDLE_TIMEOUT_MS: "2147483648" },
      'Invalid FLOTILLA_UPLOAD_IDLE_TIMEOUT_MS: "2147483648" is not a number of milliseconds (1 to 2147483647)',
    ],
    [{ FLOTILLA_LOG_MQTT: "yes" }, 'Invalid FLOTILLA_LOG_MQTT: "yes" is not 1 (on) or 0 (off)'],
    [
      { FLOTILLA_ARTIFACT_STORE: "s3" },
      'Invalid FLOTILLA_ARTIFACT_STORE: "s3" is not db (PostgreSQL) or dir (a directory)',
    ],
    [
      { FLOTILLA_ARTIFACT_STORE: "db" },
      "Invalid FLOTILLA_ARTIFACT_STORE: db needs DATABASE_URL (PostgreSQL); the embedded database keeps artifacts in a directory (dir)",
    ],
    [
      { FLOTILLA_ARTIFACT_DIR: file },
      `Invalid FLOTILLA_ARTIFACT_DIR: "${file}" is not a directory`,
    ],
  ];
  try {
    for (const [env, message] of cases) {
      assert.throws(() => readConfig(env), (error: unknown) => {
        assert.ok(error instanceof ConfigError, `${JSON.stringify(env)}: ${error}`);
        if (typeof message === "string") assert.equal(error.message, message);
        else assert.match(error.message, message);
        assert.doesNotMatch(error.message, /\n/);
        return true;
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readConfig() reads FLOTILLA_RELEASE_KEYS; a bad one is one line naming the variable", () => {
  const key = new Uint8Array(32).fill(3);
  assert.throws(
    () => readConfig({ FLOTILLA_RELEASE_KEYS: "abc" }),
    /^ConfigError: Invalid FLOTILLA_RELEASE_KEYS: "abc" is not base64 of a 32-byte Ed25519 public key$/,
  );
  assert.deepEqual(
    readConfig({ FLOTILLA_RELEASE_KEYS: `${key.toBase64()}, ${key.toBase64()}` })
      .releaseKeys,
    [key, key],
  );
  assert.deepEqual(readConfig({}).releaseKeys, []);
});

Deno.test("readConfig() reads FLOTILLA_NODE_ID and FLOTILLA_LEASE_TTL_MS; bad ones name the variable", () => {
  assert.equal(readConfig({}).nodeId, "n1");
  assert.equal(readConfig({}).leaseTtlMs, 10_000);
  const db = { DATABASE_URL: "postgres://flotilla@db/flotilla" };
  const config = readConfig({
    ...db,
    FLOTILLA_NODE_ID: "eu-west_2",
    FLOTILLA_LEASE_TTL_MS: "3000",
  });
  assert.equal(config.nodeId, "eu-west_2");
  assert.equal(config.leaseTtlMs, 3000);
  const bad: [Record<string, string>, string][] = [
    [
      { ...db, FLOTILLA_NODE_ID: "node 1" },
      'Invalid FLOTILLA_NODE_ID: "node 1" is not a node id (1 to 32 letters, digits, "_" or "-", starting with a letter or digit)',
    ],
    [
      { ...db, FLOTILLA_NODE_ID: "-n1" },
      'Invalid FLOTILLA_NODE_ID: "-n1" is not a node id (1 to 32 letters, digits, "_" or "-", starting with a letter or digit)',
    ],
    [
      { FLOTILLA_NODE_ID: "n2" },
      "Invalid FLOTILLA_NODE_ID: a cluster shares one PostgreSQL, so it needs DATABASE_URL (embedded PGlite is a single node)",
    ],
    [
      { FLOTILLA_LEASE_TTL_MS: "100" },
      'Invalid FLOTILLA_LEASE_TTL_MS: "100" is not a number of milliseconds (300 to 3600000)',
    ],
    [
      { FLOTILLA_LEASE_TTL_MS: "10s" },
      'Invalid FLOTILLA_LEASE_TTL_MS: "10s" is not a number of milliseconds (300 to 3600000)',
    ],
  ];
  for (const [env, message] of bad) {
    assert.throws(() => readConfig(env), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.message, message);
      return true;
    });
  }
});

Deno.test("readConfig() reads FLOTILLA_RELEASE_KEY_SETS as files; one line for each bad setting", async () => {
  const key = new Uint8Array(32).fill(3).toBase64();
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/v2.keyset`;
    await Deno.writeFile(path, new Uint8Array([1, 2, 3]));
    assert.throws(
      () => readConfig({ FLOTILLA_RELEASE_KEY_SETS: path }),
      /^ConfigError: Invalid FLOTILLA_RELEASE_KEY_SETS: key sets follow from FLOTILLA_RELEASE_KEYS, which is not set$/,
    );
    assert.throws(
      () =>
        readConfig({
          FLOTILLA_RELEASE_KEYS: key,
          FLOTILLA_RELEASE_KEY_SETS: `${path}, ${dir}/missing`,
        }),
      /^ConfigError: Invalid FLOTILLA_RELEASE_KEY_SETS: ".*\/missing" cannot be read: /,
    );
    // Read here; whether they chain is checked at start (releaseKeyChain).
    assert.deepEqual(
      readConfig({ FLOTILLA_RELEASE_KEYS: key, FLOTILLA_RELEASE_KEY_SETS: path }).releaseKeySets,
      [new Uint8Array([1, 2, 3])],
    );
    assert.deepEqual(readConfig({}).releaseKeySets, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
