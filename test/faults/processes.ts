import { type ChildProcess, spawn } from "node:child_process";
import { assert } from "../../src/assert.js";

/**
 * Member processes for fault tests: kill -9, SIGSTOP/SIGCONT pauses, graceful stop, and restart with
 * the same command line (the caller keeps the data dir). A process is killed when the test process
 * exits, so a failed test never leaves members behind, paused ones included (SIGKILL ends a stopped
 * process too).
 */

/** Stderr kept per process (the tail is what explains a crash). */
const STDERR_KEEP_BYTES = 256 * 1024;
/** How long stop() waits after SIGTERM before SIGKILL. */
const STOP_KILL_AFTER_MS = 5_000;

export type ProcessState = "running" | "paused" | "exited";

export class MemberProcess {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private paused = false;
  private stderrText = "";
  private readonly killOnExit = (): void => {
    this.child?.kill("SIGKILL");
  };

  constructor(
    readonly name: string,
    private readonly command: string,
    private readonly args: readonly string[],
    private readonly env: NodeJS.ProcessEnv = process.env,
    /** Working directory of the process (the repo root for the etcd-ts bin under tsx). */
    private readonly cwd?: string,
  ) {}

  /** Starts (or starts again) the process; it must not be running. */
  start(): void {
    assert(this.state() === "exited", `member ${this.name} is already running`);
    const child = spawn(this.command, [...this.args], {
      stdio: ["ignore", "ignore", "pipe"],
      env: this.env,
      ...(this.cwd === undefined ? {} : { cwd: this.cwd }),
    });
    this.child = child;
    this.paused = false;
    child.stderr?.on("data", (chunk: Buffer) => {
      this.stderrText += chunk.toString();
      if (this.stderrText.length > STDERR_KEEP_BYTES)
        this.stderrText = this.stderrText.slice(-STDERR_KEEP_BYTES / 2);
    });
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    process.once("exit", this.killOnExit);
    void this.exited.then(() => process.off("exit", this.killOnExit));
  }

  state(): ProcessState {
    const child = this.child;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return "exited";
    return this.paused ? "paused" : "running";
  }

  pid(): number | undefined {
    return this.state() === "exited" ? undefined : this.child?.pid;
  }

  /** kill -9 and wait for the exit. */
  async kill9(): Promise<void> {
    if (this.state() !== "exited") this.child?.kill("SIGKILL");
    await this.exited;
    this.paused = false;
  }

  /** SIGSTOP: the process keeps its sockets but runs nothing (a long GC pause, a stalled VM). */
  pause(): void {
    assert(this.state() === "running", `member ${this.name} is not running`);
    this.child?.kill("SIGSTOP");
    this.paused = true;
  }

  /** SIGCONT after pause(). */
  resume(): void {
    assert(this.state() === "paused", `member ${this.name} is not paused`);
    this.child?.kill("SIGCONT");
    this.paused = false;
  }

  /** SIGTERM (after SIGCONT if paused), SIGKILL if it lingers. */
  async stop(): Promise<void> {
    if (this.state() === "exited") return;
    if (this.paused) this.resume();
    this.child?.kill("SIGTERM");
    const timer = setTimeout(() => this.child?.kill("SIGKILL"), STOP_KILL_AFTER_MS);
    await this.exited;
    clearTimeout(timer);
  }

  /**
   * Resolves once the process has exited by itself (e.g. a member that removed itself), with how it
   * ended; rejects after `timeoutMs` if it is still running.
   */
  async waitExit(timeoutMs: number): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    const outcome = await Promise.race([this.exited.then(() => "exited" as const), timedOut]);
    clearTimeout(timer);
    if (outcome === "timeout") throw new Error(`member ${this.name} still running after ${timeoutMs} ms`);
    return this.exitDescription();
  }

  exitDescription(): string {
    const child = this.child;
    if (child === null) return "never started";
    return child.signalCode !== null ? `killed by ${child.signalCode}` : `exit code ${child.exitCode}`;
  }

  stderr(): string {
    return this.stderrText;
  }
}
