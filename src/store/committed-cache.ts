/**
 * A bounded map of values read from committed SQLite data that another connection (process) on the
 * same file may change. A read compares `PRAGMA data_version` with the one of the last read and
 * starts over when it moved (another connection committed); at the bound it starts over too
 * (memory only). The bound counts entries, or what `weigh` says an entry holds (a member list: its
 * members, so a few huge groups cannot hold more memory than many small ones).
 */
export class CommittedCache<K, V> {
  readonly #map = new Map<K, V>();
  #version = -1;
  #weight = 0;

  constructor(
    private readonly limit: number,
    private readonly weigh: (value: V) => number = () => 1,
  ) {}

  /** The value for `key`, loaded if missing; everything is dropped first when `version` moved. */
  read(version: number, key: K, load: () => V): V {
    if (version !== this.#version) {
      this.#drop();
      this.#version = version;
    }
    let value = this.#map.get(key);
    if (value === undefined) {
      value = load();
      this.set(key, value);
    }
    return value;
  }

  /** Without the version check: for a caller to which a stale value does no harm. */
  peek(key: K): V | undefined {
    return this.#map.get(key);
  }

  set(key: K, value: V): void {
    this.delete(key);
    const weight = Math.max(1, this.weigh(value));
    if (this.#weight + weight > this.limit) this.#drop();
    this.#map.set(key, value);
    this.#weight += weight;
  }

  delete(key: K): void {
    const old = this.#map.get(key);
    if (old === undefined) return;
    this.#map.delete(key);
    this.#weight -= Math.max(1, this.weigh(old));
  }

  clear(): void {
    this.#drop();
    this.#version = -1;
  }

  /** What the bound counts now (entries, or their weight). */
  get weight(): number {
    return this.#weight;
  }

  #drop(): void {
    this.#map.clear();
    this.#weight = 0;
  }
}
