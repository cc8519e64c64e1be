import { readFileSync } from "node:fs";
import { type BackgroundEtcdctl, etcdctl, spawnEtcdctl } from "./etcdctl.js";
import type { DiffTarget } from "./targets.js";

/**
 * The differential suite: one scenario (a list of etcdctl command lines) run against two servers, each
 * started fresh, outputs compared after normalising what legitimately differs between any two members
 * (member and cluster ids, raft terms, addresses, timings, log timestamps). Every other difference fails,
 * unless the allow-list names it with a reason.
 *
 * Scenario format (test/diff/scenarios/*.txt), one command per line, as typed after `etcdctl`:
 *   # a comment
 *   put foo bar
 *   get foo --prefix -w json
 *   txn -w json <<EOF        (the lines up to a line `EOF` are the command's standard input)
 *   value("foo") = "bar"
 *   ...
 *   EOF
 * Arguments split on spaces; single or double quotes group (no escapes inside quotes). Leading
 * `NAME=value` words set environment variables for that run (`ETCDCTL_WATCH_KEY=foo watch &W1`).
 *
 * Long-running commands (etcdctl watch) run in the background while later steps write:
 *   watch foo --prefix -w json &W1   (starts it as W1; waits WATCH_SETTLE_MS for its watch to be set up;
 *                                     the step's own output is empty)
 *   send W1 watch bar --prev-kv      (writes the rest of the line to W1's stdin, for `watch -i`; settles)
 *   stop W1                          (waits until W1 printed nothing for OUTPUT_QUIET_MS, ends it with
 *                                     SIGTERM unless it exited on its own; this step's output is
 *                                     everything W1 printed, and its exit code)
 * Every background command must be stopped by the scenario.
 *
 * Ids a server picks (lease ids) are captured and reused: `lease grant 60 => L1` stores the hex id the
 * output names ("lease 694d7f5a3b2c1d0e granted ...") as L1; a later `$L1` in an argument or here-doc is
 * replaced by it in hex (as etcdctl's lease commands take it); in outputs the id (hex, or decimal in
 * JSON) reads `<L1>`. `get k -w json => T1` captures the lease of the first key listed (`"lease":N`).
 *
 * Leases a scenario does not grant itself (the session leases of etcdctl's lock and elect) read
 * `<lease-1>`, `<lease-2>`... in the order the run first shows them (see labelLeases).
 */

export interface Step {
  /** 1-based line of the command in the scenario. */
  line: number;
  /** The command line as written (what allow-list entries match). */
  text: string;
  args: string[];
  stdin?: string;
  /** `=> NAME`: capture the id this step's output names, as NAME. */
  capture?: string;
  /** Leading `NAME=value` words: environment variables for this etcdctl run (ETCDCTL_WATCH_KEY...). */
  env?: Record<string, string>;
  /** `&NAME`: start the command in the background as NAME. */
  background?: string;
  /** `send NAME line`: the line to write to NAME's stdin. */
  send?: { name: string; line: string };
  /** `stop NAME`: end NAME; its output is this step's. */
  stop?: string;
}

export function parseScenario(text: string): Step[] {
  const lines = text.split("\n");
  const steps: Step[] = [];
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] as string).trim();
    if (raw === "" || raw.startsWith("#")) continue;
    const heredoc = /\s*<<\s*EOF$/.exec(raw);
    let command = heredoc === null ? raw : raw.slice(0, heredoc.index);
    const capture = /\s*=>\s*([A-Za-z]\w*)$/.exec(command);
    if (capture !== null) command = command.slice(0, capture.index);
    const background = /\s+&([A-Za-z]\w*)$/.exec(command);
    if (background !== null) command = command.slice(0, background.index);
    const words = splitArgs(command);
    const env: Record<string, string> = {};
    while (words.length > 1 && /^[A-Z][A-Z0-9_]*=/.test(words[0] as string)) {
      const word = words.shift() as string;
      env[word.slice(0, word.indexOf("="))] = word.slice(word.indexOf("=") + 1);
    }
    const step: Step = { line: i + 1, text: raw, args: words };
    if (Object.keys(env).length > 0) step.env = env;
    if (capture !== null) step.capture = capture[1] as string;
    if (background !== null) step.background = background[1] as string;
    const send = /^send\s+([A-Za-z]\w*)\s+(.*)$/.exec(command);
    if (send !== null) step.send = { name: send[1] as string, line: send[2] as string };
    const stop = /^stop\s+([A-Za-z]\w*)$/.exec(command);
    if (stop !== null) step.stop = stop[1] as string;
    if (heredoc !== null) {
      const body: string[] = [];
      i++;
      while (i < lines.length && lines[i] !== "EOF") body.push(lines[i++] as string);
      if (i >= lines.length) throw new Error(`scenario line ${step.line}: here-doc without EOF`);
      step.stdin = `${body.join("\n")}\n`;
      step.text = `${raw} [${body.join(" | ")}]`;
    }
    steps.push(step);
  }
  return steps;
}

function splitArgs(command: string): string[] {
  const args: string[] = [];
  const pattern = /"([^"]*)"|'([^']*)'|([^\s"']+)/g;
  let current: string | undefined;
  let lastEnd = -1;
  for (let m = pattern.exec(command); m !== null; m = pattern.exec(command)) {
    const piece = m[1] ?? m[2] ?? m[3] ?? "";
    // Adjacent pieces without a space between them form one argument (--key="a b").
    if (current !== undefined && m.index === lastEnd) current += piece;
    else {
      if (current !== undefined) args.push(current);
      current = piece;
    }
    lastEnd = m.index + m[0].length;
  }
  if (current !== undefined) args.push(current);
  return args;
}

/** What identifies a member in outputs; replaced by placeholders before comparing. */
export interface Identity {
  memberId: bigint;
  clusterId: bigint;
  name: string;
  /**
   * The raft index before the scenario's first step. Outputs show raft indexes relative to it: how many
   * entries a member appends while it starts is not client behaviour. (test/support/realEtcd.ts polls
   * etcd 3.4's /health until it answers, and each call appends a v2 QGET entry; etcd-ts serves /health
   * with a ReadIndex barrier as etcd 3.5 does, so it starts one entry lower.) Every entry a step appends
   * still shows as a difference.
   */
  raftIndex: number;
}

async function identify(endpoint: string): Promise<Identity> {
  const result = await etcdctl(endpoint, ["member", "list", "-w", "json"]);
  if (result.exitCode !== 0) throw new Error(`member list failed on ${endpoint}: ${result.stderr}`);
  // Ids exceed 2^53: read them from the text, not through JSON numbers.
  const memberId = /"member_id":(\d+)/.exec(result.stdout)?.[1];
  const clusterId = /"cluster_id":(\d+)/.exec(result.stdout)?.[1];
  const name = /"name":"([^"]*)"/.exec(result.stdout)?.[1];
  if (memberId === undefined || clusterId === undefined || name === undefined) {
    throw new Error(`cannot read the member identity from ${result.stdout}`);
  }
  const status = await etcdctl(endpoint, ["endpoint", "status", "-w", "json"]);
  const raftIndex = /"raftIndex":(\d+)/.exec(status.stdout)?.[1];
  if (status.exitCode !== 0 || raftIndex === undefined) {
    throw new Error(`endpoint status failed on ${endpoint}: ${status.stdout}${status.stderr}`);
  }
  return { memberId: BigInt(memberId), clusterId: BigInt(clusterId), name, raftIndex: Number(raftIndex) };
}

/** Raft indexes in `endpoint status` output (json, simple and table formats) shown relative to `base`. */
function relativeRaftIndexes(text: string, base: number): string {
  const relative = (index: string): string =>
    `<index${Number(index) - base >= 0 ? "+" : ""}${Number(index) - base}>`;
  return text
    .replace(
      /"raft(Applied)?Index":(\d+)/g,
      (_m, applied: string | undefined, index: string) => `"raft${applied ?? ""}Index":${relative(index)}`,
    )
    .replace(
      /((?:true|false), (?:true|false), \d+, )(\d+), (\d+), /g,
      (_m, head: string, index: string, applied: string) =>
        `${head}${relative(index)}, ${relative(applied)}, `,
    )
    .replace(
      /(\| *(?:true|false) *\| *(?:true|false) *\| *\d+ *\| *)(\d+)( *\| *)(\d+)( *\|)/g,
      (_m, head: string, index: string, mid: string, applied: string, tail: string) =>
        `${head}${relative(index)}${mid}${relative(applied)}${tail}`,
    );
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Seconds a scenario may take between granting a lease and reading its remaining TTL. */
const LEASE_TTL_SLACK_SECONDS = 5;

function nearTtl(ttl: string, left: string): boolean {
  const behind = Number(ttl) - Number(left);
  return behind >= 0 && behind <= LEASE_TTL_SLACK_SECONDS;
}

/** Replaces what differs between any two members for reasons outside the API's behaviour. */
export function normalise(output: string, identity: Identity, endpoint: string): string {
  let text = output;
  text = text.replaceAll(endpoint, "<endpoint>");
  text = text.replace(/127\.0\.0\.1:\d+/g, "<addr>");
  for (const [id, label] of [
    [identity.memberId, "<member-id>"],
    [identity.clusterId, "<cluster-id>"],
  ] as const) {
    text = text.replace(new RegExp(`\\b${id.toString()}\\b`, "g"), label);
    text = text.replace(new RegExp(`\\b${id.toString(16)}\\b`, "g"), label);
  }
  text = text.replace(new RegExp(`(, |"name":"|\\| )${escapeRegExp(identity.name)}\\b`, "g"), "$1<name>");
  text = relativeRaftIndexes(text, identity.raftIndex);
  text = text.replace(/"raft_term":\d+/g, '"raft_term":<term>');
  text = text.replace(/"raftTerm":\d+/g, '"raftTerm":<term>');
  // zap log lines of etcdctl's client: timestamps and per-process client ids.
  text = text.replace(/"ts":"[^"]*"/g, '"ts":<ts>');
  text = text.replace(/client-[0-9a-f-]{36}/g, "client-<uuid>");
  text = text.replace(/took = [\d.]+(ns|µs|us|ms|s)/g, "took = <duration>");
  // etcd lists a lease's keys in Go map order (random between runs): compare them sorted.
  text = text.replace(/attached keys\(\[([^\]]*)\]\)/g, (_whole, keys: string) => {
    return `attached keys([${keys.split(" ").sort().join(" ")}])`;
  });
  text = text.replace(/("granted-ttl":\d+,"keys":\[)([^\]]*)\]/g, (_whole, head: string, keys: string) => {
    return `${head}${keys.split(",").sort().join(",")}]`;
  });
  // A lease's remaining TTL depends on when the command ran: within a few seconds of the granted TTL
  // reads as "about the TTL"; anything else stays as it is (and fails unless the reference agrees).
  text = text.replace(/TTL\((\d+)s\), remaining\((\d+)s\)/g, (whole, ttl: string, left: string) =>
    nearTtl(ttl, left) ? `TTL(${ttl}s), remaining(about ${ttl}s)` : whole,
  );
  text = text.replace(/"ttl":(\d+),"granted-ttl":(\d+)/g, (whole, left: string, ttl: string) =>
    nearTtl(ttl, left) ? `"ttl":<about ${ttl}>,"granted-ttl":${ttl}` : whole,
  );
  text = text.replace(/"took":"[^"]*"/g, '"took":<duration>');
  // A session key in JSON (base64) shows decoded, `"key":"b64(mylock/694d...)"`, so that the lease id
  // in it can be read as one (replaceCaptured, labelLeases) just as in the simple format.
  text = text.replace(/"key":"([A-Za-z0-9+/]*={0,2})"/g, (whole, base64: string) => {
    const key = Buffer.from(base64, "base64").toString("latin1");
    return SESSION_KEY.test(key) ? `"key":"b64(${key})"` : whole;
  });
  // Table cells are padded to their widest value, which the replacements above may have changed.
  text = text
    .split("\n")
    .map((line) => (/^[|+]/.test(line) ? line.replace(/ +/g, " ").replace(/-+/g, "-") : line))
    .join("\n");
  return text;
}

/** Captured ids, hex or decimal, shown as `<NAME>`. */
function replaceCaptured(text: string, captured: ReadonlyMap<string, bigint>): string {
  let out = text;
  for (const [name, id] of captured) {
    // etcdctl prints ids as %016x: leading zeros included.
    out = out.replace(new RegExp(`\\b(0*${id.toString(16)}|${id.toString()})\\b`, "g"), `<${name}>`);
  }
  return out;
}

/**
 * A lease id as either server makes one (etcd's idutil: the member id's low 16 bits, a millisecond clock,
 * a counter; top bit cleared) has at least this many hex digits: shorter hex words after a `/` are keys.
 */
const LEASE_HEX_DIGITS_MIN = 10;
/** ...and in decimal (2^36 and up), so small numbers (`"lease":0`, test ids like 1234) stay as they are. */
const LEASE_DECIMAL_DIGITS_MIN = 11;

const LEASE_HEX = `[0-9a-f]{${LEASE_HEX_DIGITS_MIN},16}`;
/** A key clientv3/concurrency writes: `<prefix>/<session lease in %x>`. */
const SESSION_KEY = new RegExp(`^[\\x20-\\x7e]*/${LEASE_HEX}$`);
/** Where an uncaptured lease id shows, in output order: JSON fields, key suffixes, `lease list` lines. */
const LEASE_MENTION = new RegExp(
  [
    `("(?:lease|ID)":)(\\d{${LEASE_DECIMAL_DIGITS_MIN},20})\\b`,
    `(/)(${LEASE_HEX})\\b`,
    `(^)(${LEASE_HEX})$`,
    `(\\blease )(${LEASE_HEX})\\b`,
  ].join("|"),
  "gm",
);

/**
 * Shows lease ids the scenario did not capture as `<lease-N>`, numbered in first-seen order over the
 * run (`labels` carries the numbering from step to step): both servers make ids from their member id and
 * clock, so only the order in which a run meets them can compare. `lease list` prints ids in etcd's
 * expiry order, which depends on when keepalives ran: its lines are sorted by id first (ids grow with
 * grant order on both servers).
 */
export function labelLeases(text: string, labels: Map<bigint, string>): string {
  const out = text.replace(
    /^(found \d+ leases\n)((?:[0-9a-f]+\n)*)/m,
    (_whole, head: string, ids: string) => {
      const sorted = ids
        .split("\n")
        .filter((id) => id !== "")
        .sort((a, b) => (BigInt(`0x${a}`) < BigInt(`0x${b}`) ? -1 : 1));
      return `${head}${sorted.map((id) => `${id}\n`).join("")}`;
    },
  );
  return out.replace(LEASE_MENTION, (whole, ...groups: (string | undefined)[]) => {
    // Four alternatives of (head)(id): the decimal one first, then three hex ones.
    for (let i = 0; i < 8; i += 2) {
      const head = groups[i];
      const digits = groups[i + 1];
      if (head === undefined || digits === undefined) continue;
      const id = i === 0 ? BigInt(digits) : BigInt(`0x${digits}`);
      let label = labels.get(id);
      if (label === undefined) {
        label = `<lease-${labels.size + 1}>`;
        labels.set(id, label);
      }
      return `${head}${label}`;
    }
    return whole;
  });
}

export interface StepOutput {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/**
 * How long a background etcdctl is given to set up its watch before the next step writes: etcdctl prints
 * nothing when its watch is created, and a write that lands first would be missed by one target and not
 * the other. (Scenarios that can give an explicit --rev do, and then do not depend on it.)
 */
const WATCH_SETTLE_MS = 700;
/** A background etcdctl is stopped once it printed nothing for this long: its events have arrived. */
const OUTPUT_QUIET_MS = 400;
/** Longest wait for a background etcdctl to go quiet (one that keeps printing is stopped anyway). */
const STOP_WAIT_MS = 10_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function runStep(
  endpoint: string,
  step: Step,
  substitute: (text: string) => string,
  backgrounds: Map<string, BackgroundEtcdctl>,
): Promise<StepOutput> {
  const nothing: StepOutput = { stdout: "", stderr: "", exitCode: 0 };
  if (step.send !== undefined) {
    const background = backgrounds.get(step.send.name);
    if (background === undefined)
      throw new Error(`line ${step.line}: no background command ${step.send.name}`);
    background.write(`${substitute(step.send.line)}\n`);
    await sleep(WATCH_SETTLE_MS);
    return nothing;
  }
  if (step.stop !== undefined) {
    const background = backgrounds.get(step.stop);
    if (background === undefined) throw new Error(`line ${step.line}: no background command ${step.stop}`);
    const begun = Date.now();
    while (
      background.running() &&
      Date.now() - begun < STOP_WAIT_MS &&
      (Date.now() - begun < OUTPUT_QUIET_MS || Date.now() - background.lastOutputAt() < OUTPUT_QUIET_MS)
    ) {
      await sleep(50);
    }
    backgrounds.delete(step.stop);
    return background.stop();
  }
  const args = step.args.map(substitute);
  if (step.background !== undefined) {
    if (backgrounds.has(step.background)) throw new Error(`line ${step.line}: ${step.background} is running`);
    backgrounds.set(step.background, spawnEtcdctl(endpoint, args, step.env));
    await sleep(WATCH_SETTLE_MS);
    return nothing;
  }
  return etcdctl(endpoint, args, step.stdin === undefined ? undefined : substitute(step.stdin), step.env);
}

/** Runs every step of `steps` against a fresh instance of `target`; outputs normalised. */
export async function runScenario(target: DiffTarget, steps: readonly Step[]): Promise<StepOutput[]> {
  const running = await target.start();
  try {
    const identity = await identify(running.endpoint);
    const captured = new Map<string, bigint>();
    const leaseLabels = new Map<bigint, string>();
    const substitute = (text: string) =>
      text.replace(/\$([A-Za-z]\w*)/g, (whole, name: string) => captured.get(name)?.toString(16) ?? whole);
    const outputs: StepOutput[] = [];
    const backgrounds = new Map<string, BackgroundEtcdctl>();
    try {
      for (const step of steps) {
        const result = await runStep(running.endpoint, step, substitute, backgrounds);
        if (step.capture !== undefined) {
          const hex = /\blease ([0-9a-f]+)\b/.exec(result.stdout)?.[1];
          const decimal = /"(?:ID|lease)":(\d+)/.exec(result.stdout)?.[1];
          if (hex === undefined && decimal === undefined)
            throw new Error(`line ${step.line}: no id to capture in ${result.stdout}${result.stderr}`);
          captured.set(step.capture, hex !== undefined ? BigInt(`0x${hex}`) : BigInt(decimal as string));
        }
        const withIds = (text: string) =>
          labelLeases(replaceCaptured(normalise(text, identity, running.endpoint), captured), leaseLabels);
        outputs.push({
          stdout: withIds(result.stdout),
          stderr: withIds(result.stderr),
          exitCode: result.exitCode,
        });
      }
    } finally {
      for (const background of backgrounds.values()) await background.stop();
    }
    if (backgrounds.size > 0)
      throw new Error(`background commands never stopped: ${[...backgrounds.keys()].join(", ")}`);
    return outputs;
  } finally {
    await running.stop();
  }
}

/**
 * An allowed difference: for commands whose text contains `command` (and, when `targets` is given, only
 * when the second target is one of them), either every difference is allowed, or only what `mask` (a
 * regular expression, applied to both outputs; the masks of all entries matching a command add up)
 * covers. `reason` says why; an entry that allows nothing in a run is reported as stale.
 */
export interface AllowEntry {
  command: string;
  reason: string;
  mask?: string;
  targets?: string[];
}

export function loadAllowList(path: string): AllowEntry[] {
  const entries = JSON.parse(readFileSync(path, "utf8")) as AllowEntry[];
  for (const entry of entries) {
    if (typeof entry.command !== "string" || typeof entry.reason !== "string" || entry.reason.trim() === "") {
      throw new Error(`allow-list entry without command or reason: ${JSON.stringify(entry)}`);
    }
  }
  return entries;
}

export interface Difference {
  step: Step;
  reference: StepOutput;
  other: StepOutput;
}

export interface Comparison {
  /** Differences no allow-list entry covers: each is a failure. */
  unexpected: Difference[];
  /** Differences covered by an entry, with the entry. */
  allowed: { difference: Difference; entry: AllowEntry }[];
  /** Entries that matched no difference in this run. */
  stale: AllowEntry[];
}

function same(a: StepOutput, b: StepOutput): boolean {
  return a.stdout === b.stdout && a.stderr === b.stderr && a.exitCode === b.exitCode;
}

function masked(output: StepOutput, mask: RegExp): StepOutput {
  return {
    stdout: output.stdout.replace(mask, "<masked>"),
    stderr: output.stderr.replace(mask, "<masked>"),
    exitCode: output.exitCode,
  };
}

function maskCovers(mask: string, a: StepOutput, b: StepOutput): boolean {
  const pattern = new RegExp(mask);
  return [a.stdout, a.stderr, b.stdout, b.stderr].some((text) => pattern.test(text));
}

export function compare(
  steps: readonly Step[],
  reference: readonly StepOutput[],
  other: readonly StepOutput[],
  allowList: readonly AllowEntry[],
  otherTarget: string,
): Comparison {
  const used = new Set<AllowEntry>();
  const result: Comparison = { unexpected: [], allowed: [], stale: [] };
  steps.forEach((step, i) => {
    const a = reference[i] as StepOutput;
    const b = other[i] as StepOutput;
    if (same(a, b)) return;
    const difference = { step, reference: a, other: b };
    // Entries for this command and target: one without a mask allows everything; masks add up.
    const entries = allowList.filter(
      (e) => step.text.includes(e.command) && (e.targets === undefined || e.targets.includes(otherTarget)),
    );
    let allowedBy: AllowEntry[] = entries.filter((e) => e.mask === undefined).slice(0, 1);
    if (allowedBy.length === 0 && entries.length > 0) {
      let ma = a;
      let mb = b;
      for (const e of entries) {
        const mask = new RegExp(e.mask as string, "g");
        ma = masked(ma, mask);
        mb = masked(mb, mask);
      }
      // An entry whose mask covers nothing in this step's outputs allowed nothing here (else a mask
      // that no longer matches would hide behind another entry's and never be reported stale).
      if (same(ma, mb)) allowedBy = entries.filter((e) => maskCovers(e.mask as string, a, b));
    }
    if (allowedBy.length === 0) result.unexpected.push(difference);
    for (const entry of allowedBy) {
      used.add(entry);
      result.allowed.push({ difference, entry });
    }
  });
  // Stale: an entry for this target whose command this scenario runs, that allowed nothing.
  result.stale = allowList.filter(
    (e) =>
      !used.has(e) &&
      (e.targets === undefined || e.targets.includes(otherTarget)) &&
      steps.some((step) => step.text.includes(e.command)),
  );
  return result;
}

/** A readable report of differences, for assertion messages. */
export function describeDifferences(differences: readonly Difference[]): string {
  return differences
    .map(({ step, reference, other }) =>
      [
        `line ${step.line}: etcdctl ${step.text}`,
        `  reference (exit ${reference.exitCode}): ${JSON.stringify(reference.stdout + reference.stderr)}`,
        `  other     (exit ${other.exitCode}): ${JSON.stringify(other.stdout + other.stderr)}`,
      ].join("\n"),
    )
    .join("\n");
}
