import assert from "node:assert/strict";
import { refuseUrl } from "../../device/mod.ts";

Deno.test("refuseUrl() allows https anywhere and plain http only on loopback unless allowed", () => {
  const cases: [string, boolean, string | undefined][] = [
    ["https://updates.example/fw.bin", false, undefined],
    ["http://127.0.0.1:8080/fw.bin", false, undefined],
    ["http://127.8.9.10/fw.bin", false, undefined],
    ["http://localhost/fw.bin", false, undefined],
    ["http://[::1]/fw.bin", false, undefined],
    ["http://updates.example/fw.bin", false, "http_refused"],
    ["http://127.0.0.1.evil.example/fw.bin", false, "http_refused"],
    ["http://updates.example/fw.bin", true, undefined],
    ["ftp://updates.example/fw.bin", true, "unsupported_scheme"],
    ["file:///etc/passwd", true, "unsupported_scheme"],
    ["not a url", true, "invalid_url"],
  ];
  for (const [url, allowHttp, expected] of cases) {
    assert.equal(refuseUrl(url, allowHttp), expected, url);
  }
});
