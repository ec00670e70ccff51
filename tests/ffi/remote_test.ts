// The package as a remote import: served over HTTP, used from a project of its own with an
// empty cache, it builds libarcface once into the cache, trains, and reuses the build.
import assert from "node:assert/strict";

const root = new URL("../..", import.meta.url).pathname;

const TYPES: Record<string, string> = {
  ts: "application/typescript",
  json: "application/json",
  txt: "text/plain",
};

/** A static server for the checkout (Python's http.server sends .ts as video/mp2t). */
function serve(signal: AbortSignal): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, signal, onListen() {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    if (path.includes("..")) return new Response("forbidden", { status: 403 });
    try {
      const body = await Deno.readFile(`${root}${path.slice(1)}`);
      const ext = path.slice(path.lastIndexOf(".") + 1);
      return new Response(body, { headers: { "content-type": TYPES[ext] ?? "application/octet-stream" } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
}

async function run(cwd: string, env: Record<string, string>, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), { args, cwd, env, stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test({
  name: "remote import: cli.ts and mod.ts over HTTP build into an empty cache once, then train",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const stop = new AbortController();
    const server = serve(stop.signal);
    const base = `http://127.0.0.1:${server.addr.port}`;
    try {
      const work = await Deno.makeTempDir();
      // The user's own project: node_modules/yaml as `deno install` fills it.
      await Deno.writeTextFile(`${work}/deno.json`, JSON.stringify({ nodeModulesDir: "manual" }));
      await Deno.writeTextFile(`${work}/package.json`, JSON.stringify({ dependencies: { yaml: "^2" } }));
      await Deno.mkdir(`${work}/node_modules`);
      await Deno.symlink(`${root}node_modules/yaml`, `${work}/node_modules/yaml`);
      await Deno.writeTextFile(
        `${work}/tiny.yaml`,
        [
          "network: mbf",
          `rec: ${root}data/orl`,
          "num_classes: 30",
          "num_image: 60",
          "num_epoch: 1",
          "batch_size: 30",
          "frequent: 1",
          "threads: 2",
          "output: out",
        ].join("\n") + "\n",
      );
      const env = { ARCFACE_CACHE: `${work}/cache`, DENO_DIR: `${work}/deno_dir`, ARCFACE_LIB: "" };

      // A remote main module does not pick up the working folder's deno.json, so its npm:
      // import would go to the registry (unreachable here): point it at node_modules/.
      const first = await run(work, env, [
        "run",
        "-A",
        "--node-modules-dir=manual",
        `${base}/cli.ts`,
        "train",
        "tiny.yaml",
      ]);
      assert.equal(first.code, 0, first.stdout + first.stderr);
      assert.match(first.stderr, /arcface: building libarcface 0\.\d+\.\d+ into .*cache/);
      assert.match(first.stdout, /Global Step: 2/);
      const version = [...Deno.readDirSync(`${work}/cache`)].map((e) => e.name);
      assert.equal(version.length, 1);
      assert.ok(Deno.statSync(`${work}/cache/${version[0]}/libarcface.so`).isFile);

      await Deno.writeTextFile(
        `${work}/sweep.ts`,
        `import { loadConfig, train } from "${base}/mod.ts";\n` +
          `const r = await train(loadConfig("tiny.yaml", { output: "out2" }), { console: false });\n` +
          `console.log(JSON.stringify({ steps: r.steps, loss: r.loss }));\n`,
      );
      const second = await run(work, env, ["run", "-A", "sweep.ts"]);
      assert.equal(second.code, 0, second.stdout + second.stderr);
      assert.doesNotMatch(second.stderr, /building/);
      assert.equal(JSON.parse(second.stdout.trim()).steps, 2);
    } finally {
      stop.abort();
      await server.finished;
    }
  },
});
