/**
 * Many rows in one statement. Binding and stepping a statement costs about as much as the row it
 * writes (or the index entry it probes), so a transaction's rows of one kind go in chunks of up to
 * `maxRows` per statement: one prepared statement per chunk size, prepared the first time that size
 * is needed.
 */
import type Database from 'better-sqlite3';

/** `(?, ?, …), …`: `rows` parenthesized groups of `width` placeholders. */
function placeholderRows(rows: number, width: number): string {
  const row = `(${Array.from({ length: width }, () => '?').join(', ')})`;
  return Array.from({ length: rows }, () => row).join(', ');
}

export class SqliteRowBatches {
  readonly #db: Database.Database;
  readonly #sql: (values: string) => string;
  readonly #width: number;
  readonly #maxRows: number;
  readonly #bySize: (Database.Statement<unknown[]> | undefined)[] = [];

  /** `sql` receives the `(?, …), …` list of a chunk, e.g. `v => \`INSERT INTO t (a, b) VALUES ${v}\``. */
  constructor(db: Database.Database, sql: (values: string) => string, width: number, maxRows: number) {
    this.#db = db;
    this.#sql = sql;
    this.#width = width;
    this.#maxRows = maxRows;
  }

  /** `flat` holds whole rows of `width` values each, one after the other. */
  run(flat: unknown[]): void {
    this.#chunks(flat, (stmt, part) => stmt.run(...part));
  }

  /** For a query: every chunk's result rows, in chunk order. */
  all<R>(flat: unknown[]): R[] {
    const out: R[] = [];
    this.#chunks(flat, (stmt, part) => {
      for (const row of stmt.all(...part)) out.push(row as R);
    });
    return out;
  }

  #chunks(flat: unknown[], each: (stmt: Database.Statement<unknown[]>, part: unknown[]) => void): void {
    const width = this.#width;
    if (flat.length % width !== 0) throw new RangeError(`${flat.length} values are not whole rows of ${width}`);
    const chunk = this.#maxRows * width;
    for (let i = 0; i < flat.length; i += chunk) {
      const part = i === 0 && flat.length <= chunk ? flat : flat.slice(i, i + chunk);
      each(this.#statement(part.length / width), part);
    }
  }

  #statement(rows: number): Database.Statement<unknown[]> {
    let stmt = this.#bySize[rows];
    if (stmt === undefined) {
      stmt = this.#db.prepare<unknown[]>(this.#sql(placeholderRows(rows, this.#width)));
      this.#bySize[rows] = stmt;
    }
    return stmt;
  }
}
