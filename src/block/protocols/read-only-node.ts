/**
 * The writing half of a protocol node that can only be read (the http and https
 * protocols; disks inside an OVA could share it): every write, zeroing, discard
 * and resize fails with the subclass's refusal message, flush has nothing to do,
 * and there are no image locks to take. Subclasses add size, read, blockStatus,
 * allocatedSize and close.
 */
export abstract class ReadOnlyProtocolNode {
  readonly readOnly = true;
  readonly file = null;
  readonly backing = null;

  /** Why writing fails, naming the node and its driver. */
  protected abstract writeRefusal(): string;

  private refuse(): Promise<never> {
    return Promise.reject(new Error(this.writeRefusal()));
  }

  write(): Promise<void> { return this.refuse(); }
  writeGrow(): Promise<void> { return this.refuse(); }
  writevGrow(): Promise<void> { return this.refuse(); }
  writeZeroes(): Promise<void> { return this.refuse(); }
  discard(): Promise<void> { return this.refuse(); }
  truncate(): Promise<void> { return this.refuse(); }
  lockForFormat(): void {}
  async flush(): Promise<void> {}
}
