/** GET /docs: a self-contained OpenAPI viewer (no CDN: flotilla's machines may have no internet). */

/** The viewer page; it reads `specUrl` and lists every operation with its parameters and bodies. */
export function docsPage(specUrl: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>flotilla API</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1b2733;background:#f6f8fa}
header{background:#10273d;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
main{max-width:1000px;margin:0 auto;padding:16px 24px}
details{background:#fff;border:1px solid #d0d7de;border-radius:6px;margin:8px 0}
summary{cursor:pointer;padding:8px 12px;display:flex;gap:12px;align-items:center}
.m{font:bold 12px monospace;padding:3px 8px;border-radius:4px;color:#fff;min-width:52px;text-align:center}
.get{background:#1f6feb}.post{background:#1a7f37}.delete{background:#cf222e}.put,.patch{background:#9a6700}
code,pre{font-family:ui-monospace,monospace;font-size:13px}pre{background:#f6f8fa;padding:8px;overflow:auto;border-radius:4px}
.body{padding:0 12px 12px}h3{font-size:14px;margin:12px 0 4px}table{border-collapse:collapse}td{padding:2px 10px 2px 0;vertical-align:top}
</style></head><body><header><h1>flotilla API</h1><div id="v"></div></header><main id="ops">Loading ${specUrl}…</main>
<script>
const esc=(s)=>String(s).replace(/[&<>"]/g,(c)=>({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
fetch(${JSON.stringify(specUrl)}).then((r)=>r.json()).then((spec)=>{
  document.getElementById("v").textContent=(spec.info?.description||"")+" v"+(spec.info?.version||"");
  const out=[];
  const resolve=(s)=>s&&s.$ref?spec.components.schemas[s.$ref.split("/").pop()]:s;
  for(const [path,ops] of Object.entries(spec.paths||{})){for(const [method,op] of Object.entries(ops)){
    const params=(op.parameters||[]).map((p)=>"<tr><td><code>"+esc(p.name)+"</code></td><td>"+esc(p.in)+(p.required?", required":"")+"</td><td>"+esc(p.description||"")+"</td></tr>").join("");
    const body=op.requestBody?.content?Object.entries(op.requestBody.content).map(([t,c])=>"<h3>Body ("+esc(t)+")</h3><pre>"+esc(JSON.stringify(resolve(c.schema)||{},null,2))+"</pre>").join(""):"";
    const res=Object.entries(op.responses||{}).map(([code,r])=>"<tr><td><code>"+esc(code)+"</code></td><td>"+esc(r.description||"")+"</td></tr>").join("");
    out.push("<details><summary><span class='m "+method+"'>"+method.toUpperCase()+"</span><code>"+esc(path)+"</code><span>"+esc(op.summary||"")+"</span></summary><div class='body'>"+
      (op.description?"<p>"+esc(op.description)+"</p>":"")+(params?"<h3>Parameters</h3><table>"+params+"</table>":"")+body+"<h3>Responses</h3><table>"+res+"</table></div></details>");
  }}
  document.getElementById("ops").innerHTML=out.join("")||"No operations";
}).catch((e)=>{document.getElementById("ops").textContent="Cannot load the API description: "+e});
</script></body></html>`;
}
