/**
 * A bounded map of values read from committed SQLite data that another connection (process) on the
 * same file may change. A read compares `PRAGMA data_version` with the one of the last read and
 * starts over when it moved (another connection committed); at the bound it starts over too
 * (memory only).
 */
export class CommittedCache<K, V> {
  readonly #map = new Map<K, V>();
  #version = -1;

  constructor(private readonly limit: number) {}

  /** The value for `key`, loaded if missing; everything is dropped first when `version` moved. */
  read(version: number, key: K, load: () => V): V {
    if (version !== this.#version) {
      this.#map.clear();
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
    if (!this.#map.has(key) && this.#map.size >= this.limit) this.#map.clear();
    this.#map.set(key, value);
  }

  delete(key: K): void {
    this.#map.delete(key);
  }

  clear(): void {
    this.#map.clear();
    this.#version = -1;
  }
}
