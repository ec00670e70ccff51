/**
 * Two machines on one box, for the multi-machine test and benchmark: two network namespaces
 * joined by a veth pair (optionally rate-limited, as a real link is), with a Redis store in
 * the first. Needs root (CAP_NET_ADMIN), iproute2 and redis-server.
 *
 * ```ts ignore
 * if (await canUseNetns()) {
 *   const hosts = await twoHosts("demo", { rate: "1gbit" });
 *   try {
 *     await hosts.run(1, ["hostname"]);
 *   } finally {
 *     await hosts.close();
 *   }
 * }
 * ```
 *
 * @module
 */

/** The output of a command, stdout and stderr together. */
export interface Ran {
  code: number;
  text: string;
}

/** Runs a command; a missing program reads as code -1. */
export async function sh(cmd: string, args: string[], cwd?: string): Promise<Ran> {
  try {
    const o = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
    const dec = new TextDecoder();
    return { code: o.code, text: dec.decode(o.stdout) + dec.decode(o.stderr) };
  } catch (e) {
    return { code: -1, text: String(e) };
  }
}

async function ip(...args: string[]): Promise<void> {
  const r = await sh("ip", args);
  if (r.code !== 0) throw new Error(`ip ${args.join(" ")}: ${r.text}`);
}

/** Whether this process may create network namespaces and has a Redis server to start. */
export async function canUseNetns(): Promise<boolean> {
  const probe = `afc${Deno.pid % 100000}p`;
  if ((await sh("ip", ["netns", "add", probe])).code !== 0) return false;
  await sh("ip", ["netns", "del", probe]);
  return (await sh("redis-server", ["--version"])).code === 0;
}

/** Two hosts: host 0 holds the Redis store. */
export interface TwoHosts {
  /** Each host's IP address. */
  addrs: [string, string];
  /** The rendezvous, `redis://<host 0>:<port>`. */
  store: string;
  /** Runs a command inside host `host`'s namespace. */
  run(host: 0 | 1, command: string[], cwd?: string): Promise<Ran>;
  /** Stops Redis and removes the namespaces (and with them the veth pair). */
  close(): Promise<void>;
}

/**
 * Creates the namespaces `<tag>a` and `<tag>b`; `rate` (tc's notation, "1gbit") limits each
 * direction of the link, as a token bucket.
 */
export async function twoHosts(tag: string, o: { rate?: string } = {}): Promise<TwoHosts> {
  const names = [`${tag}a`, `${tag}b`] as const;
  const addrs: [string, string] = ["10.213.7.1", "10.213.7.2"];
  const port = "6390";
  let redis: Deno.ChildProcess | undefined;
  const close = async () => {
    redis?.kill("SIGKILL");
    await redis?.status;
    for (const ns of names) await sh("ip", ["netns", "del", ns]); // takes its end of the veth pair
  };
  try {
    for (const ns of names) await ip("netns", "add", ns);
    await ip("link", "add", `${tag}va`, "type", "veth", "peer", "name", `${tag}vb`);
    for (const [i, ns] of names.entries()) {
      const dev = `${tag}v${"ab"[i]}`;
      await ip("link", "set", dev, "netns", ns);
      await ip("-n", ns, "addr", "add", `${addrs[i]}/24`, "dev", dev);
      await ip("-n", ns, "link", "set", dev, "up");
      await ip("-n", ns, "link", "set", "lo", "up");
      if (o.rate) {
        const tc = ["netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", o.rate];
        await ip(...tc, "burst", "256kb", "latency", "100ms");
      }
    }
    redis = new Deno.Command("ip", {
      args: ["netns", "exec", names[0], "redis-server", "--port", port, "--bind", addrs[0]]
        .concat(["--protected-mode", "no", "--save", "", "--appendonly", "no"]),
      stdout: "null",
      stderr: "null",
    }).spawn();
    // Ready when the other namespace reaches it.
    const ping = ["netns", "exec", names[1], "redis-cli", "-h", addrs[0], "-p", port, "ping"];
    let ready = false;
    for (let i = 0; i < 50 && !ready; i++) {
      ready = (await sh("ip", ping)).text.includes("PONG");
      if (!ready) await new Promise((r) => setTimeout(r, 100));
    }
    if (!ready) throw new Error(`redis-server in ${names[0]} did not answer from ${names[1]}`);
  } catch (e) {
    await close();
    throw e;
  }
  return {
    addrs,
    store: `redis://${addrs[0]}:${port}`,
    run: (host, command, cwd) => sh("ip", ["netns", "exec", names[host], ...command], cwd),
    close,
  };
}
