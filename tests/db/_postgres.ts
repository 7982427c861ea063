/** A throwaway PostgreSQL database per test run, so parallel test files never share tables. */
import postgres from "postgres";

/** The PostgreSQL server tests may use, if any. */
export const TEST_DATABASE_URL = Deno.env.get("FLOTILLA_TEST_DATABASE_URL");

/** A database created for one test run. */
export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** Creates `flotilla_test_<random>` on the server at `serverUrl`. */
export async function createTestDatabase(serverUrl: string): Promise<TestDatabase> {
  const name = `flotilla_test_${crypto.randomUUID().replaceAll("-", "")}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    async drop() {
      const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await admin.end({ timeout: 5 });
      }
    },
  };
}
