/**
 * Graceful watch mode: restart the whole process, with zero downtime, when a
 * file under a directory changes. Unlike `deno run --watch`, which kills the
 * process and its in-flight requests, the restart is the supervisor's: the
 * new generation takes over once it serves, the old one drains, and a broken
 * edit (a syntax error) leaves the old generation serving.
 *
 * What counts as a change: any create, modify, rename or remove reported by
 * `Deno.watchFs(root, { recursive: true })` on a path that is not ignored.
 * A burst of changes within `debounceMs` makes one restart; changes during a
 * restart make exactly one more once it has finished.
 *
 * Every generation runs its own watcher. Since a new generation starts to
 * watch only once it runs, it first looks for files modified after its process
 * started (an edit saved while it was starting), so that no edit is lost
 * between two generations.
 *
 * @module
 */

import { join, relative, resolve } from "node:path";
import { logger } from "../util/log.ts";
import { errorMessage } from "../util/error_message.ts";
import { isIgnored, isPruned } from "./watch_ignore.ts";

/** How long the tree must be quiet before a restart (ms), by default. */
export const DEFAULT_DEBOUNCE_MS = 300;

/** The level of a watch log line. */
export type WatchLogLevel = "info" | "warn" | "error";

/** Options of {@linkcode watchAndRestart}. */
export interface WatchOptions {
  /**
   * How long the tree must be quiet before a restart (ms): a burst of changes
   * makes one restart. Default {@linkcode DEFAULT_DEBOUNCE_MS}.
   */
  debounceMs?: number;
  /**
   * More paths to ignore, besides `.git`, `node_modules`, `.cache` and editor
   * temp files. A string is an absolute path (that file, or everything under
   * that directory; a relative path with a slash is taken from `root`) or,
   * without a slash, a path segment name (`"dist"` ignores every `dist`
   * directory or file). A RegExp is tested against the absolute path of each
   * change; it never stops a directory from being looked into, so that one
   * like `/^(?!.*\.ts$)/` ("only .ts files count") still sees `lib/x.ts`.
   */
  ignore?: (string | RegExp)[];
  /**
   * Where progress and failures go. Default: the module's logger (LogTape
   * category `["graceful", "watch"]`, silent until logging is configured).
   */
  log?: (level: WatchLogLevel, message: string) => void;
  /**
   * Files under `root` modified after this time (ms since the epoch) and
   * before the watch started count as one change, found once, at start: an
   * edit saved while this generation was starting is not lost. Default: when
   * this process's runtime started (`performance.timeOrigin`, before any
   * module was loaded). `Infinity` turns this off.
   */
  since?: number;
}

/** A running watch, from {@linkcode watchAndRestart}. */
export interface Watcher {
  /**
   * Stops watching, at once and for good: no restart starts after it, not
   * even one already scheduled; a restart in progress runs to its end but
   * nothing follows it. Synchronous and idempotent.
   */
  close(): void;
  /** How many times `restart` has been called (successful or not). */
  readonly restarts: number;
}

/** Directory names whose whole subtree is never watched for changes. */
/**
 * Watches `root` (recursively) and calls `restart` after changes: once per
 * burst of changes (`debounceMs`), never two at a time, and exactly once more
 * after a restart during which files changed. A rejected `restart` is logged
 * with its reason, and the next change tries again.
 *
 * Never throws for the file system: when `root` is missing, disappears, or
 * cannot be watched, it logs, retries in the background, and restarts once it
 * watches again. When a subdirectory is unreadable, it watches the readable
 * directories one by one instead.
 *
 * Run it in every generation, once the server is ready, and `close()` it when
 * this generation hands over or shuts down.
 */
export function watchAndRestart(
  root: string,
  options: WatchOptions,
  restart: () => Promise<unknown>,
): Watcher {
  const debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  if (!Number.isFinite(debounceMs) || debounceMs < 0) {
    throw new RangeError(
      `debounceMs must be a finite number ≥ 0, got ${debounceMs}`,
    );
  }
  return new RestartingWatcher(
    resolve(root),
    debounceMs,
    [...(options.ignore ?? [])],
    options.log ?? defaultLog,
    options.since ?? performance.timeOrigin,
    restart,
  );
}

const log = logger("watch");

function defaultLog(level: WatchLogLevel, message: string): void {
  if (level === "info") log.info("{message}", { message });
  else if (level === "warn") log.warn("{message}", { message });
  else log.error("{message}", { message });
}

/** The first retry after a failed watch (ms); it doubles up to the maximum. */
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 10_000;
/** The catch-up scan works in slices of this many ms, between other work. */
const SCAN_SLICE_MS = 5;

type Timer = ReturnType<typeof setTimeout>;

class RestartingWatcher implements Watcher {
  readonly #root: string;
  readonly #debounceMs: number;
  readonly #ignore: (string | RegExp)[];
  readonly #log: (level: WatchLogLevel, message: string) => void;
  readonly #since: number;
  readonly #restart: () => Promise<unknown>;

  /** The current file system watch, if any. */
  #fs: Deno.FsWatcher | undefined;
  /** Watching each directory one by one (a subdirectory is unreadable). */
  #perDirectory = false;
  #closed = false;
  #restarts = 0;
  #running = false;
  /** Changes came while a restart ran: one more restart once it ends. */
  #pending = false;
  /** Changed paths since the last restart, for the log line. */
  #changed = new Set<string>();
  #debounce: Timer | undefined;
  #retry: Timer | undefined;
  #retryMs = RETRY_MIN_MS;
  /** The watch is broken (logged once until it works again). */
  #broken = false;
  #scan: Timer | undefined;
  #scanned = false;

  constructor(
    root: string,
    debounceMs: number,
    ignore: (string | RegExp)[],
    log: (level: WatchLogLevel, message: string) => void,
    since: number,
    restart: () => Promise<unknown>,
  ) {
    this.#root = root;
    this.#debounceMs = debounceMs;
    this.#ignore = ignore;
    this.#log = log;
    this.#since = since;
    this.#restart = restart;
    if (this.#watch()) this.#log("info", `watching ${root} for changes`);
  }

  get restarts(): number {
    return this.#restarts;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#debounce);
    clearTimeout(this.#retry);
    clearTimeout(this.#scan);
    this.#debounce = this.#retry = this.#scan = undefined;
    this.#unwatch();
  }

  #ignored(path: string): boolean {
    return isIgnored(this.#root, path, this.#ignore);
  }

  #pruned(dir: string): boolean {
    return isPruned(this.#root, dir, this.#ignore);
  }

  /** Starts watching; on failure logs (once), retries later, returns false. */
  #watch(): boolean {
    let fs: Deno.FsWatcher;
    try {
      fs = this.#open();
    } catch (error) {
      if (!this.#broken) {
        this.#broken = true;
        const why = error instanceof Deno.errors.NotFound
          ? "it does not exist"
          : errorMessage(error);
        this.#log(
          "error",
          `cannot watch ${this.#root} (${why}): serving on without ` +
            `restarting on changes, and retrying`,
        );
      }
      this.#retryLater();
      return false;
    }
    this.#fs = fs;
    this.#pump(fs);
    if (!this.#scanned) {
      this.#scanned = true;
      this.#catchUp();
    }
    return true;
  }

  /** Opens a watch: recursive, or, when that fails, directory by directory. */
  #open(): Deno.FsWatcher {
    try {
      const fs = Deno.watchFs(this.#root, { recursive: true });
      this.#perDirectory = false;
      return fs;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) throw error;
      const fs = this.#openEach();
      if (!this.#perDirectory) {
        this.#log(
          "warn",
          `cannot watch ${this.#root} recursively (${errorMessage(error)}): ` +
            `watching its readable directories one by one`,
        );
      }
      this.#perDirectory = true;
      return fs;
    }
  }

  /** Watches every readable directory that is not ignored, non-recursively. */
  #openEach(): Deno.FsWatcher {
    Deno.readDirSync(this.#root); // the root itself must be readable
    const dirs: string[] = [];
    const stack = [this.#root];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      let entries: Deno.DirEntry[];
      try {
        entries = [...Deno.readDirSync(dir)];
      } catch {
        continue; // unreadable (or gone): not watchable either
      }
      dirs.push(dir);
      for (const entry of entries) {
        const path = join(dir, entry.name);
        if (entry.isDirectory && !this.#pruned(path)) stack.push(path);
      }
    }
    return Deno.watchFs(dirs, { recursive: false });
  }

  #unwatch(): void {
    const fs = this.#fs;
    this.#fs = undefined;
    try {
      fs?.close();
    } catch {
      // already closed
    }
  }

  async #pump(fs: Deno.FsWatcher): Promise<void> {
    try {
      for await (const event of fs) {
        if (this.#fs !== fs) return;
        this.#onEvent(event);
      }
      if (this.#fs === fs) throw new Error("the watch ended");
    } catch (error) {
      if (this.#fs !== fs || this.#closed) return;
      this.#log(
        "warn",
        `watching ${this.#root} failed (${errorMessage(error)}): retrying`,
      );
      this.#lost();
    }
  }

  #onEvent(event: Deno.FsEvent): void {
    if (this.#closed) return;
    if (
      (event.kind === "remove" || event.kind === "rename") &&
      event.paths.includes(this.#root)
    ) {
      // The root itself was removed or moved away: its watch is dead.
      this.#log(
        "warn",
        `${this.#root} disappeared: waiting for it to come back`,
      );
      this.#lost();
      return;
    }
    if (
      this.#perDirectory &&
      (event.kind === "create" || event.kind === "rename") &&
      event.paths.some((path) => !this.#pruned(path) && isDirectory(path))
    ) {
      this.#rewatch(); // a new directory: watch it too
    }
    const relevant = event.paths.filter((path) => !this.#ignored(path));
    if (event.flag === "rescan") relevant.push(this.#root); // events were lost
    if (relevant.length === 0) return;
    for (const path of relevant) this.#changed.add(path);
    this.#schedule();
  }

  /** Reopens the per-directory watch (its set of directories changed). */
  #rewatch(): void {
    this.#unwatch();
    this.#watch();
  }

  /** The watch broke: drop it, retry in the background, restart when back. */
  #lost(): void {
    this.#unwatch();
    this.#broken = true;
    clearTimeout(this.#debounce);
    this.#debounce = undefined;
    this.#retryMs = RETRY_MIN_MS;
    this.#retryLater();
  }

  #retryLater(): void {
    if (this.#closed || this.#retry !== undefined) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      if (this.#closed) return;
      if (!this.#watch()) {
        this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MAX_MS);
        return;
      }
      this.#broken = false;
      this.#retryMs = RETRY_MIN_MS;
      this.#log(
        "info",
        `watching ${this.#root} again; restarting, since it may have changed`,
      );
      this.#changed.add(this.#root);
      this.#schedule();
    }, this.#retryMs);
    Deno.unrefTimer(this.#retry as unknown as number);
  }

  /** (Re)starts the quiet period; the restart runs when it ends. */
  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => this.#quiet(), this.#debounceMs);
  }

  #quiet(): void {
    this.#debounce = undefined;
    if (this.#closed || this.#fs === undefined) return; // broken: see retry
    if (this.#running) {
      this.#pending = true;
      return;
    }
    this.#run();
  }

  async #run(): Promise<void> {
    this.#running = true;
    this.#restarts++;
    const changed = [...this.#changed];
    this.#changed.clear();
    const first = changed.length > 0
      ? relative(this.#root, changed[0]) || "."
      : "something";
    const more = changed.length > 1 ? ` (and ${changed.length - 1} more)` : "";
    this.#log("info", `${first}${more} changed: restarting`);
    try {
      await this.#restart();
    } catch (error) {
      if (!this.#closed) {
        this.#log(
          "error",
          `restart failed, the running generation keeps serving: ` +
            errorMessage(error),
        );
      }
    } finally {
      this.#running = false;
      if (this.#pending && !this.#closed) {
        this.#pending = false;
        // One more, after a quiet period: the edits may not be over yet.
        this.#schedule();
      }
    }
  }

  /**
   * Once, at start: a file modified after `since` (and not in the future)
   * counts as a change. Runs in short slices, so that serving goes on.
   */
  #catchUp(): void {
    const since = this.#since;
    if (!(since < Date.now())) return;
    const stack = [this.#root];
    const step = () => {
      this.#scan = undefined;
      if (this.#closed) return;
      const deadline = performance.now() + SCAN_SLICE_MS;
      while (stack.length > 0 && performance.now() < deadline) {
        const dir = stack.pop()!;
        let entries: Deno.DirEntry[];
        try {
          entries = [...Deno.readDirSync(dir)];
        } catch {
          continue;
        }
        for (const entry of entries) {
          const path = join(dir, entry.name);
          if (entry.isDirectory) {
            if (!this.#pruned(path)) stack.push(path);
            continue;
          }
          if (this.#ignored(path)) continue;
          // Files only: a directory's mtime also moves when this process
          // writes an ignored file into it (the pidfile), which is no edit.
          const mtime = modifiedAt(path);
          if (mtime !== undefined && mtime > since && mtime <= Date.now()) {
            this.#log(
              "info",
              `${relative(this.#root, path)} changed while this process ` +
                `was starting`,
            );
            this.#changed.add(path);
            this.#schedule();
            return;
          }
        }
      }
      if (stack.length > 0) this.#scan = setTimeout(step, 0);
    };
    this.#scan = setTimeout(step, 0);
  }
}

function isDirectory(path: string): boolean {
  try {
    return Deno.lstatSync(path).isDirectory;
  } catch {
    return false;
  }
}

function modifiedAt(path: string): number | undefined {
  try {
    return Deno.lstatSync(path).mtime?.getTime();
  } catch {
    return undefined;
  }
}
