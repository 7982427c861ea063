import { parsePolicy, WindowCalendar } from "../policies/mod.ts";
const h = 3_600_000;
const cal = new WindowCalendar([{ start: "0 22 * * *", duration: 4*h, timeZone: "Europe/Berlin" }]);
const t = Date.parse("2026-03-28T20:30:00Z"); // 21:30 CET
console.log(cal.isOpen(t), new Date(cal.nextOpen(t)!).toISOString(), new Date(cal.nextClose(cal.nextOpen(t)!)!).toISOString());
console.log(cal.isOpen(Date.parse("2026-03-28T21:00:00Z")), cal.isOpen(Date.parse("2026-03-28T20:59:59.999Z")), cal.isOpen(Date.parse("2026-03-29T01:00:00Z")), cal.isOpen(Date.parse("2026-03-29T00:59:59Z")));
const always = new WindowCalendar([{ start: "0 * * * *", duration: h, timeZone: "UTC" }]);
console.log(always.isOpen(5), always.nextClose(5));
for (const bad of [
 "windows: { open: [ { start: '0 2 * * * *', duration: 4h, timeZone: Europe/Berlin } ] }",
 "windows: { open: [ { start: '0 2 * * *', duration: 0s, timeZone: Mars/Base } ] }",
 "windows: { open: [ { start: '0 0 31 2 *', duration: 8d } ] }",
 "windows: { open: [ { start: '0 0 * * *', duration: 30d } ] }",
 "windows: { by: site }",
 "windows: { groups: { a: [] } }",
 "windows: {}",
]) { try { parsePolicy("name: x\nstages: [{percent: 100}]\n" + bad + "\n", {source:"p.yaml"}); console.log("OK?!"); } catch (e) { console.log((e as Error).message, JSON.stringify((e as any).issues.map((i:any)=>i.path+": "+i.message))); } }
